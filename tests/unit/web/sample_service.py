"""A minimal service used to test the web kit itself."""

from pathlib import Path

from flask import Response
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from gridkit.auth import require_roles
from gridkit.db import declarative_base
from gridkit.events import Catalogue
from gridkit.outbox import Inbox, Outbox
from gridkit.problems import Conflict
from gridkit.service import ServiceSpec
from gridkit.web import Blueprint, no_store

Base = declarative_base()
catalogue = Catalogue("sample")
blp = Blueprint("notes", __name__, url_prefix="/notes")


class NoteIn(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=50))
    priority = fields.Integer(load_default=1, validate=validate.Range(min=1, max=5))


class NoteOut(NoteIn):
    id = fields.Integer()


@blp.route("")
class Notes(MethodView):
    @blp.arguments(NoteIn)
    @blp.response(201, NoteOut)
    def post(self, note):
        if note["title"] == "taken":
            raise Conflict("a note with that title exists")
        return {"id": 1, **note}


@blp.route("/secret")
class Secret(MethodView):
    @require_roles("county_admin")
    @blp.response(200, NoteOut)
    def get(self):
        return {"id": 2, "title": "secret", "priority": 5}


@blp.route("/boom")
class Boom(MethodView):
    @blp.response(200, NoteOut)
    def get(self):
        raise RuntimeError("database password is hunter2")


@blp.route("/page")
class Page(MethodView):
    def get(self):
        return Response("<p>reference</p>", content_type="text/html",
                        headers={"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'"})


@blp.route("/key")
class Key(MethodView):
    @no_store
    @blp.response(200, NoteOut)
    def get(self):
        return {"id": 3, "title": "secret key", "priority": 1}


spec = ServiceSpec(
    name="sample", description="test service", base=Base, catalogue=catalogue,
    blueprints=lambda: [blp], migrations=Path(__file__).parent, port=8999,
    outbox=Outbox(Base.metadata), inbox=Inbox(Base.metadata),
)
