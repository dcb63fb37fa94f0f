"""`python -m appliance` is the same program as the `ockam` executable."""

from appliance.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
