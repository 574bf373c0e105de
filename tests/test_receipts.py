import json

from ingest.receipts import build_receipt, replace_receipt, report_receipt


def test_a_receipt_replaces_only_the_older_ones_of_its_hour(tmp_path):
    old = build_receipt(tmp_path, "2026-01-14", "11", "20260114T110500-7")
    neighbour = build_receipt(tmp_path, "2026-01-14", "12", "20260114T110500-7")
    day = report_receipt(tmp_path, "2026-01-14", "20260114T110500-7")
    for p in (old, neighbour, day):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("{}")
    new = build_receipt(tmp_path, "2026-01-14", "11", "20260114T111000-8")
    assert replace_receipt(new, {"total": 3}) == [old]
    assert json.loads(new.read_text()) == {"total": 3}
    assert not old.exists() and neighbour.exists() and day.exists()
    assert new.parent == tmp_path / "built" / "2026-01-14"
    assert new.name == "2026-01-14_11.20260114T111000-8.json"
