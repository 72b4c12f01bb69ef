"""What the bot does for each chat command, card press and API call: parse -> domain -> neutral reply."""
