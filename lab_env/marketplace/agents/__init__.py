"""Agent programs the labs and the capstone run as separate processes
(`python -m lab_env.marketplace.agents.<name> ...`, started with lab_env.runtime.workers)."""
