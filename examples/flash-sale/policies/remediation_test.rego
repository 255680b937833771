# Tests for remediation.rego, run by `selfheal policy test examples/flash-sale/policies`.
# Each test evaluates the whole decision document for one input, as the controller does.
package selfheal.remediation_test

import data.selfheal.remediation

# The flash-sale incident: order-service throttled at 2 replicas, 87.50 USD of budget left.
throttling := {
	"incident": {
		"id": "inc-0001",
		"fingerprint": "3f2a9c0d1e4b5a67",
		"alert": "OrderServiceCPUThrottling",
		"labels": {
			"alertname": "OrderServiceCPUThrottling",
			"namespace": "production",
			"service": "order-service",
			"severity": "critical",
		},
		"annotations": {"summary": "order-service is CPU-throttled"},
		"value": 0.42,
		"onset_at": 1767225660.0,
	},
	"target": {
		"kind": "Deployment",
		"namespace": "production",
		"name": "order-service",
		"replicas": 2,
		"available_replicas": 2,
	},
	"context": {
		"budget": {
			"daily_budget": 100.0,
			"spent_today": 12.5,
			"cost_per_replica_hour": 0.5,
			"currency": "USD",
		},
		"slo": {"p95_latency_seconds": 0.2},
		"now": 1767225672.0,
	},
	"runbooks": {"scale-up": {
		"params": ["current_replicas", "deployment", "max_replicas", "namespace", "replicas"],
		"risk": "medium",
	}},
}

test_throttling_alert_plans_scale_up_to_five_replicas if {
	decision := remediation with input as throttling
	count(decision.plans) == 1
	count(decision.deny) == 0
	some plan in decision.plans
	plan.runbook == "scale-up"
	plan.risk == "medium"
	plan.params == {
		"namespace": "production",
		"deployment": "order-service",
		"current_replicas": 2,
		"replicas": 5,
		"max_replicas": 10,
	}
	contains(plan.reason, "36.00 USD/day")
	not decision.requires_approval
}

test_over_budget_denies_and_plans_nothing if {
	spent := json.patch(throttling, [{"op": "replace", "path": "/context/budget/spent_today", "value": 80}])
	decision := remediation with input as spent
	count(decision.plans) == 0
	decision.deny == {"scaling order-service by 3 replicas costs 36.00 USD/day, over the remaining budget of 20.00 USD"}
}

test_budget_exactly_covering_the_cost_still_plans if {
	exact := json.patch(throttling, [{"op": "replace", "path": "/context/budget/spent_today", "value": 64}])
	decision := remediation with input as exact
	count(decision.plans) == 1
}

test_unrelated_alert_neither_plans_nor_denies if {
	unrelated := json.patch(throttling, [
		{"op": "replace", "path": "/incident/alert", "value": "DiskAlmostFull"},
		{"op": "replace", "path": "/incident/labels/alertname", "value": "DiskAlmostFull"},
	])
	decision := remediation with input as unrelated
	count(decision.plans) == 0
	count(decision.deny) == 0
}

test_remediation_label_opts_any_alert_into_scale_up if {
	labelled := json.patch(throttling, [
		{"op": "replace", "path": "/incident/alert", "value": "CheckoutLatencyHigh"},
		{"op": "add", "path": "/incident/labels/remediation", "value": "scale-up"},
	])
	decision := remediation with input as labelled
	count(decision.plans) == 1
}

test_missing_target_denies_with_a_reason if {
	decision := remediation with input as object.remove(throttling, ["target"])
	count(decision.plans) == 0
	some reason in decision.deny
	contains(reason, "no known target")
}

test_null_target_is_as_unknown_as_a_missing_one if {
	decision := remediation with input as object.union(throttling, {"target": null})
	count(decision.plans) == 0
	count(decision.deny) == 1
}

test_missing_budget_denies if {
	no_budget := json.patch(throttling, [{"op": "remove", "path": "/context/budget"}])
	decision := remediation with input as no_budget
	count(decision.plans) == 0
	some reason in decision.deny
	contains(reason, "no budget")
}

test_desired_replicas_are_capped_at_ten if {
	big := json.patch(throttling, [{"op": "replace", "path": "/target/replicas", "value": 7}])
	remediation.desired_replicas == 10 with input as big
}

test_target_at_the_cap_is_denied if {
	capped := json.patch(throttling, [{"op": "replace", "path": "/target/replicas", "value": 10}])
	decision := remediation with input as capped
	count(decision.plans) == 0
	some reason in decision.deny
	contains(reason, "cap of 10")
}

test_high_risk_plan_requires_approval if {
	remediation.requires_approval with remediation.plans as {{"risk": "high"}}
}

test_scale_up_is_medium_risk_and_needs_no_approval if {
	decision := remediation with input as throttling
	some plan in decision.plans
	plan.risk == "medium"
	decision.requires_approval == false
}

test_a_high_risk_runbook_makes_the_scale_up_wait_for_approval if {
	risky := json.patch(throttling, [{"op": "replace", "path": "/runbooks/scale-up/risk", "value": "high"}])
	decision := remediation with input as risky
	some plan in decision.plans
	plan.risk == "high"
	decision.requires_approval == true
}

test_an_alert_label_cannot_lower_the_risk_or_skip_the_approval if {
	risky := json.patch(throttling, [
		{"op": "replace", "path": "/runbooks/scale-up/risk", "value": "high"},
		{"op": "add", "path": "/incident/labels/risk", "value": "low"},
	])
	decision := remediation with input as risky
	some plan in decision.plans
	plan.risk == "high"
	decision.requires_approval == true
}

test_an_alert_label_cannot_raise_the_risk_either if {
	odd := json.patch(throttling, [{"op": "add", "path": "/incident/labels/risk", "value": "high"}])
	decision := remediation with input as odd
	some plan in decision.plans
	plan.risk == "medium"
	decision.requires_approval == false
}

test_page_label_denies_so_a_person_is_called_and_plans_nothing if {
	crash := json.patch(throttling, [
		{"op": "replace", "path": "/incident/alert", "value": "PodCrashLooping"},
		{"op": "replace", "path": "/incident/labels", "value": {"remediation": "page", "deployment": "catalog"}},
		{"op": "replace", "path": "/incident/annotations", "value": {"summary": "pod catalog-1 restarted 3 times"}},
	])
	decision := remediation with input as crash
	count(decision.plans) == 0
	some reason in decision.deny
	contains(reason, "PodCrashLooping on catalog pages a person")
	contains(reason, "restarted 3 times")
}

test_money_has_two_decimals if {
	remediation.money(36) == "36.00"
	remediation.money(20.5) == "20.50"
	remediation.money(-5.25) == "-5.25"
	remediation.money(0.004) == "0.00"
}

# An anomaly signal as the controller passes it: the traffic watch, corroborated.
signal_input(confidence) := object.union(throttling, {
	"incident": object.union(throttling.incident, {
		"alert": "OrderServiceTrafficAnomaly",
		"labels": {"alertname": "OrderServiceTrafficAnomaly", "remediation": "scale-up"},
	}),
	"signal": {
		"name": "OrderServiceTrafficAnomaly",
		"score": 1.0,
		"confidence": confidence,
		"evidence": ["OrderServiceLatencyAnomaly anomalous 0s ago, weight 0.60"],
		"at": 1767225671.0,
	},
})

test_confident_signal_plans_scale_up if {
	result := remediation with input as signal_input(0.87)
	count(result.plans) == 1
	count(result.deny) == 0
}

test_unsure_signal_is_denied_with_its_confidence if {
	result := remediation with input as signal_input(0.6)
	count(result.plans) == 0
	result.deny == {"the anomaly signal behind OrderServiceTrafficAnomaly is only 0.60 confident, below the 0.80 this policy acts on"}
}

test_rule_alert_without_a_signal_needs_no_confidence if {
	result := remediation with input as object.union(throttling, {"signal": null})
	count(result.plans) == 1
}
