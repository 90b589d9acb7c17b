"""The bodies the service receives: the web form's fields.

A reading itself is ``common.readings.Reading``, declared once for every stage.
"""

from __future__ import annotations

from pydantic import create_model

from common.schema import SENSORS

# Every field is optional text: a missing or wrong value is reported by us, in French, naming the field.
ReadingForm = create_model("ReadingForm", equipment_id=(str, ""), **{s.name: (str, "") for s in SENSORS})
