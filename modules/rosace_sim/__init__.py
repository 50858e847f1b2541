"""The simulated spectroscopic observatory: a conformant ASCOM Alpaca server."""

#: The simulator's Alpaca devices, by ROSACE's ``[devices]`` role: (role, device number).
#: The guide (slit-jaw) camera is camera 1, the spectrograph's camera 0.
DEVICE_ROLES = (("dome", 0), ("telescope", 0), ("spectro_camera", 0), ("guide_camera", 1), ("switch", 0),
                ("safety_monitor", 0), ("observing_conditions", 0))


def devices_config(url: str, **extra) -> dict:
    """The ``[devices]`` table pointing every role at the simulator at ``url``.

    ``extra`` is added to each device's entry (``retries=1`` in tests, for instance).
    """
    return {role: {"url": url, "device_number": number, **extra} for role, number in DEVICE_ROLES}
