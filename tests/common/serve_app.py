"""The smallest app that says which worker answered: what tests/common/test_serve.py serves."""

import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/pid")
def pid() -> int:
    return os.getpid()
