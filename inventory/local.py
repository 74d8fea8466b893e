"""This machine: ``aiwf`` commands use this inventory unless given --inventory.

pyinfra can also use it: ``pyinfra inventory/local.py deploy.py`` deploys onto this machine.
"""

hosts = [
    ("@local", {"aiwf": {}}),
]
