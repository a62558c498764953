"""Research tools: metrics, benchmarks, reports and loops over replays."""
