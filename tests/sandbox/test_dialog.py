"""The OAuth consent page and its redirects."""

import re
from html.parser import HTMLParser

from .conftest import APP_ID, PAGE_1, REDIRECT, SCOPES, error_of


class Inputs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inputs, self.buttons, self.labels = [], [], []
        self._label = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input":
            self.inputs.append(attrs)
        elif tag == "button":
            self.buttons.append(attrs)
        elif tag == "label":
            self._label = {"for": attrs.get("for"), "text": ""}

    def handle_data(self, data):
        if self._label is not None:
            self._label["text"] += data

    def handle_endtag(self, tag):
        if tag == "label" and self._label is not None:
            self.labels.append(self._label)
            self._label = None


def dialog(meta, **params):
    query = {
        "client_id": APP_ID,
        "redirect_uri": REDIRECT,
        "state": "abc123",
        "scope": ",".join(SCOPES),
        "response_type": "code",
        **params,
    }
    return meta.client.get("/v25.0/dialog/oauth", query_string=query)


def parse(resp) -> Inputs:
    parser = Inputs()
    parser.feed(resp.get_data(as_text=True))
    return parser


def test_consent_page_lists_permissions_pages_and_buttons(make_meta):
    meta = make_meta("several_pages")
    resp = dialog(meta)
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    page = parse(resp)
    perms = [i for i in page.inputs if i.get("name") == "permissions"]
    assert [p["value"] for p in perms] == SCOPES
    assert all("checked" in p for p in perms)
    pages = [i for i in page.inputs if i.get("name") == "pages"]
    assert [p["value"] for p in pages] == list(meta.world.pages)
    assert all("checked" in p for p in pages)
    hidden = {i["name"]: i["value"] for i in page.inputs if i.get("type") == "hidden"}
    assert hidden == {"client_id": APP_ID, "redirect_uri": REDIRECT, "state": "abc123", "scope": ",".join(SCOPES)}
    ids = {b.get("id"): b.get("value") for b in page.buttons}
    assert ids == {"continue": "continue", "cancel": "cancel"}
    labels = {lab["for"]: " ".join(lab["text"].split()) for lab in page.labels}
    assert "Toko Sari" in labels[f"page-{PAGE_1}"]
    assert "instagram_content_publish" in labels["perm-instagram_content_publish"]


def test_unknown_client_id_is_an_html_error(meta):
    resp = dialog(meta, client_id="someone-else")
    assert resp.status_code == 400
    assert resp.mimetype == "text/html"
    assert "Invalid App ID" in resp.get_data(as_text=True)


def test_continue_redirects_with_code_and_state(meta):
    resp = meta.consent(state="s-1")
    assert resp.status_code == 302
    location = resp.headers["Location"]
    assert re.fullmatch(re.escape(REDIRECT) + r"\?code=AQ[A-Za-z0-9]+&state=s-1", location)


def test_continue_appends_to_an_existing_query(meta):
    resp = meta.consent(redirect_uri=REDIRECT + "?from=dash", state="xyz")
    location = resp.headers["Location"]
    assert location.startswith(REDIRECT + "?from=dash&code=AQ")
    assert location.endswith("&state=xyz")


def test_cancel_redirects_with_access_denied(meta):
    resp = meta.consent(action="cancel", state="s-2")
    assert resp.status_code == 302
    assert resp.headers["Location"] == (
        REDIRECT + "?error=access_denied&error_code=200&error_description=Permissions+error"
        "&error_reason=user_denied&state=s-2#_=_"
    )
    assert meta.world.codes == {}


def test_unticked_page_is_not_listed(make_meta):
    meta = make_meta("several_pages")
    token = meta.user_token(pages=["110000000000002"])
    resp = meta.get("/v25.0/me/accounts", token, fields="id,name")
    assert [p["id"] for p in resp.get_json()["data"]] == ["110000000000002"]
    err = error_of(meta.get(f"/v25.0/{PAGE_1}", token, fields="id,name"))
    assert (err["code"], err["error_subcode"]) == (100, 33)


def test_permission_declined_scenario_preunticks_the_scope(make_meta):
    meta = make_meta("permission_declined")
    perms = {i["value"]: "checked" in i for i in parse(dialog(meta)).inputs if i.get("name") == "permissions"}
    assert perms["instagram_content_publish"] is False
    assert perms["pages_manage_posts"] is True


def test_unticked_scope_is_declined(meta):
    granted = [s for s in SCOPES if s != "business_management"]
    code = meta.code(permissions=granted)
    token = meta.exchange(code).get_json()["access_token"]
    data = meta.get("/v25.0/me/permissions", token).get_json()["data"]
    assert {"permission": "business_management", "status": "declined"} in data
