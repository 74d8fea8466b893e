"""An example production inventory: copy it, fill in your host, deploy with
``aiwf deploy --inventory inventory/production.py``
(or ``pyinfra inventory/production.py deploy.py``).

Shared settings come from group_data/all.py; what is given here overrides them for this host.
"""

hosts = [
    (
        "ai.example.com",
        {
            "ssh_user": "deploy",
            "_sudo": True,
            "aiwf": {
                "domains": ["ai.example.com"],
                "tls": {"mode": "letsencrypt", "email": "ops@example.com"},
                "paths": {"data_dir": "/srv/ai-workflow", "home": "/home/deploy"},
                "services": {
                    "orchestrator": {
                        "ticket_source": "plane",
                        "plane": {
                            "api_url": "https://plane.example.com/api/v1",
                            "workspace_slug": "example",
                            # The key never goes in this file: name a variable or a 0600 file.
                            "api_key_env": "PLANE_API_KEY",
                        },
                    },
                },
                # "speech": {"mode": "remote", "url": "http://gpu-host:8000"},
            },
        },
    ),
]
