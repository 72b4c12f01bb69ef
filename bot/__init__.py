"""The running service: settings, aiohttp app and routes, CLI, platform adapters, outbox sender."""
