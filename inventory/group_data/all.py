"""Settings shared by every host of every inventory in this folder.

Every key is optional: the defaults (see docs/configuration.md) give a working local stack with
self-signed certificates, the local ticket folder and speech-to-text off. Hosts override any of
these in their own ``aiwf`` data (see local.py and production.py).
"""

aiwf = {
    "project": "ai-workflow",
    # "domains": ["ai.example.com"],
    # "speech": {"mode": "off"},
    # "backup": {"compression": "zstd", "retention": {"keep_last": 7}},
}
