"""The registry of provider plugins, keyed by the string stored in Provider.key."""
_plugins = {}


class UnknownProvider(LookupError):
    pass


def register(key):
    """Class decorator: @register("replicate") makes the class reachable as registry.get("replicate")."""

    def wrap(cls):
        if key in _plugins and _plugins[key] is not cls:
            raise ValueError(f"Provider key {key!r} is registered twice.")
        cls.key = key
        _plugins[key] = cls
        return cls

    return wrap


def get(key):
    try:
        return _plugins[key]()
    except KeyError:
        raise UnknownProvider(
            f"No provider plugin is registered as {key!r}; known keys: {', '.join(available()) or 'none'}."
        ) from None


def plugin_class(key):
    get(key)  # same error for an unknown key
    return _plugins[key]


def available():
    return sorted(_plugins)
