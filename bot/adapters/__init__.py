"""Platform adapters: payload formats stop here."""
