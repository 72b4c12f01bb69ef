"""WeCom (企业微信): callback crypto, parsing, card rendering, async API client."""
