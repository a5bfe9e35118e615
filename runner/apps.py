from django.apps import AppConfig


class RunnerConfig(AppConfig):
    name = "runner"
    verbose_name = "Code runner"

    def ready(self):
        # Bad settings stop the server at start, naming the variable (conf reads them all).
        from . import conf

        conf.get()
