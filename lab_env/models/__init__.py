"""Language models for the course.

candidates.py   the course's agent specifications, and the candidate
                implementations the offline server answers them with
offline_app.py  an offline OpenAI-compatible server (a stand-in for a
                hosted model), as an ASGI app
offline.py      starts and stops that server
client.py       model_client(): the official ``openai`` client for it, or for
                a real server when OPENAI_API_KEY (and OPENAI_BASE_URL) say
                so; code_in(): the Python in a model's answer
trial.py        a candidate running as a live actor host, for a validation
                suite to probe
"""
