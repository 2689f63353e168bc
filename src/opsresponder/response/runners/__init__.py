"""What runs one action: a catalog script as a process (script.py), an HTTP call (http.py), or a
notification (through response.notify). base.py is the contract the executor sees."""
