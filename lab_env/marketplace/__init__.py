"""The programs the course builds and runs as apps: the agents, their coordination
protocols, their homes and the capstone's market."""
