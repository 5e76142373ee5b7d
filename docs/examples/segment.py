#!/usr/bin/env python3
"""strokeview over REST with `requests`: upload a case, run a segmentation, download the mask.

    pip install requests
    export STROKEVIEW_URL=http://localhost:7860 STROKEVIEW_TOKEN=svt_...   # strokeview tokens create
    python segment.py dwi.nii.gz adc.nii.gz [lesion_mask.nii.gz] -o predicted.nii.gz

The routes and their schemas are described by GET /api/openapi.json.
"""
import argparse
import os
import sys
import time

import requests

TERMINAL = {"succeeded", "failed", "cancelled"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dwi")
    parser.add_argument("adc")
    parser.add_argument("mask", nargs="?", help="ground truth (the job then reports Dice)")
    parser.add_argument("-o", "--output", default="predicted_mask.nii.gz")
    parser.add_argument("--name", default="uploaded from Python")
    args = parser.parse_args()

    base = os.environ.get("STROKEVIEW_URL", "http://localhost:7860").rstrip("/") + "/api"
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {os.environ['STROKEVIEW_TOKEN']}"

    def check(res: requests.Response) -> dict:
        if not res.ok:
            # Errors are {"message", "code"} with the HTTP status.
            body = res.json() if res.headers.get("content-type", "").startswith("application/json") else {}
            sys.exit(f"{res.request.method} {res.url}: {res.status_code} {body.get('message', res.text[:200])}")
        return res.json()

    # 1. Upload: multipart form, every file checked before anything is stored.
    files = {"dwi": open(args.dwi, "rb"), "adc": open(args.adc, "rb")}
    if args.mask:
        files["mask"] = open(args.mask, "rb")
    case = check(session.post(f"{base}/cases", data={"name": args.name}, files=files))
    print(f"case {case['id']}: {', '.join(case['roles'])}")

    # 2. A job on the server's default model; poll until it ends.
    job = check(session.post(f"{base}/jobs", json={"caseId": case["id"]}))
    while job["status"] not in TERMINAL:
        time.sleep(1)
        job = check(session.get(f"{base}/jobs/{job['id']}"))
        print(f"{job['progress']:5.0f}% {job['status']}: {job['message']}")
    if job["status"] != "succeeded":
        sys.exit(f"job {job['id']} {job['status']}: {job['error']}")

    # 3. Metrics, and the mask through its signed, short-lived link (no token needed).
    metrics = job["result"]["metrics"]
    print(f"predicted {metrics['predictedMl']:.2f} mL, Dice {metrics['dice']}")
    with session.get(job["result"]["mask"]["downloadUrl"], stream=True) as res:
        res.raise_for_status()
        with open(args.output, "wb") as out:
            for chunk in res.iter_content(1 << 16):
                out.write(chunk)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
