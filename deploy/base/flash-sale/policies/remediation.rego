# Remediation policy for the flash-sale example: scale out a CPU-throttled service when the
# extra replicas fit in what is left of today's budget.
#
# The controller evaluates the whole package, data.selfheal.remediation, and reads three keys
# of it: `plans`, `deny` and `requires_approval` (see docs/policies.md). Every other rule here
# is a helper that the controller ignores.
package selfheal.remediation

# Alerts that mean "this workload needs more replicas". Any other alert opts in with the
# label remediation="scale-up", so new alerts need no policy change.
scale_up_alerts := {"OrderServiceCPUThrottling"}

# Doubling plus one clears a throttled service within one step (2 -> 5) without asking for
# a second decision; below 3 replicas losing one pod during a burst hurts again.
min_replicas := 3

# One decision never plans more than this: it bounds the blast radius and the bill of a
# single mistake. The guardrails apply their own caps on top of this one.
max_replicas := 10

# An anomaly detector's signal (input.signal, null for a rule's alert) must be at least this
# sure before it moves anything: one odd metric alone is not enough (docs/anomalies.md).
min_signal_confidence := 0.8

# The budget is per day, the replica price per hour.
hours_per_day := 24

plans contains plan if {
	wants_scale_up
	confident
	target_known
	budget_known
	extra_replicas > 0
	affordable
	plan := {
		"runbook": "scale-up",
		"params": {
			"namespace": input.target.namespace,
			"deployment": input.target.name,
			"current_replicas": input.target.replicas,
			"replicas": desired_replicas,
			"max_replicas": max_replicas,
		},
		"risk": risk,
		"reason": sprintf(
			"%s fired for %s: scaling from %d to %d replicas costs %s %s/day more, within the remaining budget of %s %s",
			[
				input.incident.alert, input.target.name, input.target.replicas, desired_replicas,
				money(extra_cost_per_day), currency, money(remaining_budget), currency,
			],
		),
	}
}

deny contains reason if {
	wants_scale_up
	not confident
	reason := sprintf(
		"the anomaly signal behind %s is only %.2f confident, below the %.2f this policy acts on",
		[alert_name, input.signal.confidence, min_signal_confidence],
	)
}

deny contains reason if {
	wants_scale_up
	confident
	not target_known
	reason := sprintf(
		"alert %s names no known target: there is nothing to scale (check the alert's namespace and service labels)",
		[alert_name],
	)
}

deny contains reason if {
	wants_scale_up
	confident
	target_known
	not budget_known
	reason := sprintf(
		"no budget in the policy input: refusing to scale %s without knowing what it costs",
		[input.target.name],
	)
}

deny contains reason if {
	wants_scale_up
	confident
	target_known
	extra_replicas <= 0
	reason := sprintf(
		"%s already runs %d replicas, at or above this policy's cap of %d",
		[input.target.name, input.target.replicas, max_replicas],
	)
}

deny contains reason if {
	wants_scale_up
	confident
	target_known
	budget_known
	extra_replicas > 0
	not affordable
	reason := sprintf(
		"scaling %s by %d replicas costs %s %s/day, over the remaining budget of %s %s",
		[
			input.target.name, extra_replicas, money(extra_cost_per_day), currency,
			money(remaining_budget), currency,
		],
	)
}

# Alerts labelled remediation="page" ask for a person, not an automatic fix: a crash loop
# is not cured by restarting or scaling what keeps crashing. Denying escalates: one page
# per incident, however many pods alert (examples/alert-storm groups them).
deny contains reason if {
	input.incident.labels.remediation == "page"
	reason := sprintf(
		"%s on %s pages a person instead of acting: %s",
		[
			alert_name, object.get(input.incident.labels, "deployment", "(no deployment)"),
			object.get(input.incident, ["annotations", "summary"], "(no summary)"),
		],
	)
}

# A scale-up is as risky as its runbook says (input.runbooks, from the runbook's `risk`),
# never as an alert's labels say: whoever sends an alert must not choose whether a person
# is asked. The controller also raises a plan to its runbook's risk whatever this says.
default risk := "medium"

risk := input.runbooks["scale-up"].risk if input.runbooks["scale-up"].risk in {"low", "medium", "high"}

# A person approves anything risky before it runs.
default requires_approval := false

requires_approval if {
	some plan in plans
	plan.risk == "high"
}

wants_scale_up if input.incident.alert in scale_up_alerts

wants_scale_up if input.incident.labels.remediation == "scale-up"

alert_name := object.get(input, ["incident", "alert"], "(unnamed)")

# A rule's alert carries no signal and is as sure as its rule; a signal must earn it.
confident if not is_object(object.get(input, "signal", null))

confident if input.signal.confidence >= min_signal_confidence

# A null or partial target is as unknown as a missing one.
target_known if {
	is_object(input.target)
	is_string(input.target.name)
	is_string(input.target.namespace)
	is_number(input.target.replicas)
}

budget := input.context.budget

budget_known if {
	is_number(budget.daily_budget)
	is_number(budget.spent_today)
	is_number(budget.cost_per_replica_hour)
	is_string(budget.currency)
}

currency := budget.currency

desired_replicas := min([max([(input.target.replicas * 2) + 1, min_replicas]), max_replicas])

extra_replicas := desired_replicas - input.target.replicas

extra_cost_per_day := (extra_replicas * budget.cost_per_replica_hour) * hours_per_day

remaining_budget := budget.daily_budget - budget.spent_today

affordable if extra_cost_per_day <= remaining_budget

# An amount with exactly two decimals. Built from whole cents because a number's "%.2f"
# rendering is engine-specific: an integral value such as 36.0 may be stored as the
# integer 36 and then print without decimals.
money(amount) := concat("", ["-", unsigned_money(abs(amount))]) if amount < 0

money(amount) := unsigned_money(amount) if amount >= 0

unsigned_money(amount) := sprintf("%d.%02d", [whole, cents]) if {
	total_cents := round(amount * 100)
	whole := floor(total_cents / 100)
	cents := total_cents - (whole * 100)
}
