from django.apps import AppConfig


class RunnerConfig(AppConfig):
    name = "runner"
    verbose_name = "Code runner"

    def ready(self):
        # Bad fair-use settings stop the server at start, naming the variable.
        import ipaddress

        from django.conf import settings
        from django.core.exceptions import ImproperlyConfigured

        from .fairuse import setting_rate

        setting_rate("RUNNER_RATE_LIMIT", settings.RUNNER_RATE_LIMIT)
        setting_rate("RUNNER_KEY_RATE_LIMIT", settings.RUNNER_KEY_RATE_LIMIT)
        for net in filter(None, (n.strip() for n in settings.RUNNER_TRUSTED_PROXIES.split(","))):
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ImproperlyConfigured(
                    f"RUNNER_TRUSTED_PROXIES: {net!r} is not an address or CIDR"
                ) from None
