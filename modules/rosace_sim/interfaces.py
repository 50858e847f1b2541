"""Members of each ASCOM device interface, as the official Alpaca device API lists them.

Taken from AlpacaDeviceAPI_v1.yaml (the official ASCOM OpenAPI file) plus ISwitchV3's
``cancelasync`` (Platform 7). The server uses it to tell a member this simulator does not
implement (HTTP 200, ASCOM NotImplemented 0x400) from a name that is no member at all (HTTP 400).
"""

COMMON = {
    "get": frozenset(
        [
            "connected",
            "connecting",
            "description",
            "devicestate",
            "driverinfo",
            "driverversion",
            "interfaceversion",
            "name",
            "supportedactions",
        ]
    ),
    "put": frozenset(
        ["action", "commandblind", "commandbool", "commandstring", "connect", "connected", "disconnect"]
    ),
}

MEMBERS = {
    "camera": {
        "get": frozenset(
            [
                "bayeroffsetx",
                "bayeroffsety",
                "binx",
                "biny",
                "camerastate",
                "cameraxsize",
                "cameraysize",
                "canabortexposure",
                "canasymmetricbin",
                "canfastreadout",
                "cangetcoolerpower",
                "canpulseguide",
                "cansetccdtemperature",
                "canstopexposure",
                "ccdtemperature",
                "cooleron",
                "coolerpower",
                "electronsperadu",
                "exposuremax",
                "exposuremin",
                "exposureresolution",
                "fastreadout",
                "fullwellcapacity",
                "gain",
                "gainmax",
                "gainmin",
                "gains",
                "hasshutter",
                "heatsinktemperature",
                "imagearray",
                "imagearrayvariant",
                "imageready",
                "ispulseguiding",
                "lastexposureduration",
                "lastexposurestarttime",
                "maxadu",
                "maxbinx",
                "maxbiny",
                "numx",
                "numy",
                "offset",
                "offsetmax",
                "offsetmin",
                "offsets",
                "percentcompleted",
                "pixelsizex",
                "pixelsizey",
                "readoutmode",
                "readoutmodes",
                "sensorname",
                "sensortype",
                "setccdtemperature",
                "startx",
                "starty",
                "subexposureduration",
            ]
        ),
        "put": frozenset(
            [
                "abortexposure",
                "binx",
                "biny",
                "cooleron",
                "fastreadout",
                "gain",
                "numx",
                "numy",
                "offset",
                "pulseguide",
                "readoutmode",
                "setccdtemperature",
                "startexposure",
                "startx",
                "starty",
                "stopexposure",
                "subexposureduration",
            ]
        ),
    },
    "covercalibrator": {
        "get": frozenset(
            [
                "brightness",
                "calibratorchanging",
                "calibratorstate",
                "covermoving",
                "coverstate",
                "maxbrightness",
            ]
        ),
        "put": frozenset(["calibratoroff", "calibratoron", "closecover", "haltcover", "opencover"]),
    },
    "dome": {
        "get": frozenset(
            [
                "altitude",
                "athome",
                "atpark",
                "azimuth",
                "canfindhome",
                "canpark",
                "cansetaltitude",
                "cansetazimuth",
                "cansetpark",
                "cansetshutter",
                "canslave",
                "cansyncazimuth",
                "shutterstatus",
                "slaved",
                "slewing",
            ]
        ),
        "put": frozenset(
            [
                "abortslew",
                "closeshutter",
                "findhome",
                "openshutter",
                "park",
                "setpark",
                "slaved",
                "slewtoaltitude",
                "slewtoazimuth",
                "synctoazimuth",
            ]
        ),
    },
    "filterwheel": {
        "get": frozenset(["focusoffsets", "names", "position"]),
        "put": frozenset(["position"]),
    },
    "focuser": {
        "get": frozenset(
            [
                "absolute",
                "ismoving",
                "maxincrement",
                "maxstep",
                "position",
                "stepsize",
                "tempcomp",
                "tempcompavailable",
                "temperature",
            ]
        ),
        "put": frozenset(["halt", "move", "tempcomp"]),
    },
    "observingconditions": {
        "get": frozenset(
            [
                "averageperiod",
                "cloudcover",
                "dewpoint",
                "humidity",
                "pressure",
                "rainrate",
                "sensordescription",
                "skybrightness",
                "skyquality",
                "skytemperature",
                "starfwhm",
                "temperature",
                "timesincelastupdate",
                "winddirection",
                "windgust",
                "windspeed",
            ]
        ),
        "put": frozenset(["averageperiod", "refresh"]),
    },
    "rotator": {
        "get": frozenset(
            [
                "canreverse",
                "ismoving",
                "mechanicalposition",
                "position",
                "reverse",
                "stepsize",
                "targetposition",
            ]
        ),
        "put": frozenset(["halt", "move", "moveabsolute", "movemechanical", "reverse", "sync"]),
    },
    "safetymonitor": {
        "get": frozenset(["issafe"]),
        "put": frozenset([]),
    },
    "switch": {
        "get": frozenset(
            [
                "canasync",
                "canwrite",
                "getswitch",
                "getswitchdescription",
                "getswitchname",
                "getswitchvalue",
                "maxswitch",
                "maxswitchvalue",
                "minswitchvalue",
                "statechangecomplete",
                "switchstep",
            ]
        ),
        "put": frozenset(
            ["cancelasync", "setasync", "setasyncvalue", "setswitch", "setswitchname", "setswitchvalue"]
        ),
    },
    "telescope": {
        "get": frozenset(
            [
                "alignmentmode",
                "altitude",
                "aperturearea",
                "aperturediameter",
                "athome",
                "atpark",
                "axisrates",
                "azimuth",
                "canfindhome",
                "canmoveaxis",
                "canpark",
                "canpulseguide",
                "cansetdeclinationrate",
                "cansetguiderates",
                "cansetpark",
                "cansetpierside",
                "cansetrightascensionrate",
                "cansettracking",
                "canslew",
                "canslewaltaz",
                "canslewaltazasync",
                "canslewasync",
                "cansync",
                "cansyncaltaz",
                "canunpark",
                "declination",
                "declinationrate",
                "destinationsideofpier",
                "doesrefraction",
                "equatorialsystem",
                "focallength",
                "guideratedeclination",
                "guideraterightascension",
                "ispulseguiding",
                "rightascension",
                "rightascensionrate",
                "sideofpier",
                "siderealtime",
                "siteelevation",
                "sitelatitude",
                "sitelongitude",
                "slewing",
                "slewsettletime",
                "targetdeclination",
                "targetrightascension",
                "tracking",
                "trackingrate",
                "trackingrates",
                "utcdate",
            ]
        ),
        "put": frozenset(
            [
                "abortslew",
                "declinationrate",
                "doesrefraction",
                "findhome",
                "guideratedeclination",
                "guideraterightascension",
                "moveaxis",
                "park",
                "pulseguide",
                "rightascensionrate",
                "setpark",
                "sideofpier",
                "siteelevation",
                "sitelatitude",
                "sitelongitude",
                "slewsettletime",
                "slewtoaltaz",
                "slewtoaltazasync",
                "slewtocoordinates",
                "slewtocoordinatesasync",
                "slewtotarget",
                "slewtotargetasync",
                "synctoaltaz",
                "synctocoordinates",
                "synctotarget",
                "targetdeclination",
                "targetrightascension",
                "tracking",
                "trackingrate",
                "unpark",
                "utcdate",
            ]
        ),
    },
}


def is_member(device_type: str, verb: str, member: str) -> bool:
    """True when ``member`` is part of the interface of ``device_type`` for HTTP ``verb`` (get/put)."""
    return member in COMMON[verb] or member in MEMBERS.get(device_type, {}).get(verb, frozenset())
