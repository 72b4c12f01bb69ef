"""DingTalk (钉钉): Stream receiver, HTTP callback, API client."""
