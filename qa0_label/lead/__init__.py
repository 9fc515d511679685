"""Team-lead work: agreement statistics, adjudication, reports and their charts."""
