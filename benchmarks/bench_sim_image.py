"""Read a 3000 x 2000 16-bit frame from the simulator over loopback: ImageBytes vs JSON.

ImageBytes through ROSACE's adapter, ``rosace_core.alpaca.Camera.read_image``
(alpyca ImageArrayRaw); the reference way is the JSON encoding of the same frame
(``GET imagearray`` without the ImageBytes Accept header, decoded into numpy),
in the same run. Prints the headline figures as one JSON object on the last line.
"""

from __future__ import annotations

import json
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "modules"))

import numpy as np  # noqa: E402


def main(repeats: int = 3) -> dict:
    import requests

    from rosace_core.alpaca import Camera
    from rosace_sim.testing import SimObservatory, wait_for

    scenario = {"clock": {"start": "2025-01-15T20:00:00Z", "rate": 50}}
    with SimObservatory(scenario) as sim:
        cam = Camera(sim.url, 0)
        cam.connect()
        cam.start_exposure(0.0, light=False)
        wait_for(lambda: cam.image_ready, timeout=60)
        reference = sim.observatory.spectro_camera._image
        t_bytes = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            img = cam.read_image()
            t_bytes.append(time.perf_counter() - t0)
        assert img.shape == (2000, 3000) and np.array_equal(img, reference)
        tracemalloc.start()
        cam.read_image()
        peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        # The reference way: the JSON encoding (what a client without ImageBytes gets).
        t0 = time.perf_counter()
        body = requests.get(f"{sim.url}/api/v1/camera/0/imagearray", params={"ClientTransactionID": 1}, timeout=120).json()
        json_img = np.asarray(body["Value"], dtype=np.int32).T
        t_json = time.perf_counter() - t0
        assert np.array_equal(json_img, reference)
    best = min(t_bytes)
    result = {
        "benchmark": "sim_image_3000x2000",
        "imagebytes_s": round(best, 4),
        "json_s": round(t_json, 3),
        "ratio": round(t_json / best, 1),
        "imagebytes_peak_mb": round(peak_bytes / 1e6, 1),
        "goal_imagebytes_under_0_1_s": best < 0.1,
        "goal_ratio_at_least_15": t_json / best >= 15,
    }
    print(f"ImageBytes (rosace_core.alpaca.Camera.read_image): {best:.3f} s (best of {repeats})")
    print(f"JSON (imagearray, decoded to numpy):                {t_json:.3f} s")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
