"""Photos: raw bodies checked by their magic bytes, size-limited, stored outside the rows."""

from __future__ import annotations

from intake.domain import MAX_PHOTO_BYTES
from intake.tables import Photo
from intake.testing import JPEG, PNG, WEBP

from .conftest import count, submit, upload


def test_a_jpeg_png_and_webp_upload_and_the_reporter_and_staff_can_fetch_them(intake, client, people):
    _, headers = people.resident()
    ids = []
    for data, kind in ((JPEG, "image/jpeg"), (PNG, "image/png"), (WEBP, "image/webp")):
        response = upload(client, headers, data, kind)
        assert response.status_code == 201, response.json
        assert response.json["content_type"] == kind and response.json["size"] == len(data)
        ids.append(response.json["id"])
    petition = submit(client, headers, photos=ids)
    assert petition["photos"] == ids
    fetched = client.get(f"/photos/{ids[0]}", headers=headers)
    assert fetched.status_code == 200 and fetched.data == JPEG and fetched.content_type == "image/jpeg"
    _, worker = people.worker()
    assert client.get(f"/photos/{ids[1]}", headers=worker).data == PNG
    _, stranger = people.resident()
    assert client.get(f"/photos/{ids[1]}", headers=stranger).status_code == 403
    assert client.get("/photos/nope", headers=headers).status_code == 404
    # Bytes live in the store under data_dir/photos, addressed by their hash.
    stored = list((intake.settings.data_dir / "photos").rglob("*"))
    assert sum(p.is_file() for p in stored) == 3


def test_a_fake_jpeg_is_refused_by_its_content(client, people):
    _, headers = people.resident()
    response = upload(client, headers, b"GIF89a" + b"\x00" * 100, "image/jpeg")
    assert response.status_code == 422 and "body" in response.json["errors"]
    assert upload(client, headers, PNG, "image/jpeg").status_code == 422  # a PNG claiming to be a JPEG
    assert upload(client, headers, b"", "image/jpeg").status_code == 422


def test_other_types_are_unsupported_media(client, people):
    _, headers = people.resident()
    assert upload(client, headers, b"GIF89a" + b"\x00" * 10, "image/gif").status_code == 415
    assert upload(client, headers, b"hello", "text/plain").status_code == 415


def test_an_oversized_photo_is_413(intake, client, people):
    _, headers = people.resident()
    response = upload(client, headers, JPEG + b"\x00" * MAX_PHOTO_BYTES, "image/jpeg")
    assert response.status_code == 413 and response.content_type == "application/problem+json"
    assert count(intake, Photo) == 0


def test_at_most_nine_photos_and_only_your_own(client, people):
    _, headers = people.resident()
    ids = [upload(client, headers, JPEG + bytes([i]), "image/jpeg").json["id"] for i in range(10)]
    assert "photos" in submit(client, headers, expect=422, photos=ids)["errors"]
    assert "photos" in submit(client, headers, expect=422, photos=[ids[0], ids[0]])["errors"]
    _, other = people.resident()
    assert "photos" in submit(client, other, expect=422, photos=[ids[0]])["errors"]
    submit(client, headers, photos=ids[:9])
    # A photo belongs to one petition.
    assert "photos" in submit(client, headers, expect=422, photos=[ids[0]], separate=True)["errors"]


def test_the_same_picture_twice_is_stored_once(intake, client, people):
    _, headers = people.resident()
    a = upload(client, headers).json["id"]
    b = upload(client, headers).json["id"]
    assert a != b
    files = [p for p in (intake.settings.data_dir / "photos").rglob("*") if p.is_file()]
    assert len(files) == 1
