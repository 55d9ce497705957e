#!/usr/bin/env bash
# The README's first session, against the compose stack (docker-compose.yml) on a fresh
# installation: an administrator, a county with one grid and a grid worker; a resident
# registers with the code texted to her phone, reports a safety hazard, and sees on her
# timeline that it was submitted, opened and assigned to the grid. Then her personal-data
# download, which identity assembles from every service over the compose network.
#
#   docker compose up -d && deploy/first-session.sh
#   COMPOSE="podman-compose -p gridgov-ci" deploy/first-session.sh       # what make stack-check runs
#
# COMPOSE is how the stack is reached: `exec` makes the first sysadmin, `logs sms-sink`
# holds the texts as `make run`'s output does (SMS_LOGS may name a quicker command).
# The services are on 127.0.0.1 at GRIDGOV_<SERVICE>_PORT (docker-compose.yml's defaults:
# 8001 8002 8003 8004 8006).
# Safe to run again: each run makes its own county, in its own place, and its own resident.
set -euo pipefail

COMPOSE=${COMPOSE:-docker compose}
IDENTITY=http://127.0.0.1:${GRIDGOV_IDENTITY_PORT:-8001}
GRIDS=http://127.0.0.1:${GRIDGOV_GRIDS_PORT:-8002}
INTAKE=http://127.0.0.1:${GRIDGOV_INTAKE_PORT:-8003}
DISPATCH=http://127.0.0.1:${GRIDGOV_DISPATCH_PORT:-8004}
NOTIFY=http://127.0.0.1:${GRIDGOV_NOTIFY_PORT:-8006}
ADMIN=first-session-admin
ADMIN_PASSWORD=${GRIDGOV_FIRST_SESSION_PASSWORD:-first-session-admin-password}
PATIENCE=${GRIDGOV_FIRST_SESSION_SECONDS:-120}  # events crossing services on a busy machine

say() { printf '\n== %s  (%s s)\n' "$*" "$SECONDS"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

# call METHOD URL STATUS [curl options]: the answer's body, or fail naming what came instead.
call() {
  local method=$1 url=$2 expect=$3 body status
  shift 3
  body=$(mktemp)
  status=$(curl -sS -o "$body" -w '%{http_code}' -X "$method" "$url" "$@") || status=000
  if [ "$status" != "$expect" ]; then
    echo "$method $url answered $status (expected $expect): $(head -c 2000 "$body")" >&2
    rm -f "$body"
    return 1
  fi
  cat "$body"
  rm -f "$body"
}
field() {  # field KEY: the JSON body's KEY (quietly nothing when the call before it failed)
  python3 -c 'import json, sys
try: print(json.load(sys.stdin)[sys.argv[1]])
except ValueError: sys.exit(1)' "$1"
}
json=(-H 'Content-Type: application/json')

# eventually SECONDS WHAT COMMAND...: retry COMMAND (quietly) until it succeeds.
eventually() {
  local seconds=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$what (waited ${seconds} s)"
    sleep 1
  done
}

token() {  # token JSON-CREDENTIALS: an access token
  call POST "$IDENTITY/tokens" 200 "${json[@]}" -d "{\"grant_type\":\"password\",$1}" | field access_token
}

say "every service ready"
for url in "$IDENTITY" "$GRIDS" "$INTAKE" "$DISPATCH" "$NOTIFY"; do
  eventually "$PATIENCE" "$url/readyz" call GET "$url/readyz" 200 >/dev/null
done

say "the first sysadmin (gridgov create-sysadmin, in the identity-web container)"
if ! ADMIN_TOKEN=$(token "\"username\":\"$ADMIN\",\"password\":\"$ADMIN_PASSWORD\"" 2>/dev/null); then
  $COMPOSE exec -T -e GRIDGOV_ADMIN_PASSWORD="$ADMIN_PASSWORD" identity-web \
    gridgov create-sysadmin --username "$ADMIN"
  ADMIN_TOKEN=$(token "\"username\":\"$ADMIN\",\"password\":\"$ADMIN_PASSWORD\"")
fi

# This run's names and place: a tag (a-f0-9), and a square of 0.02° somewhere in Yunnan.
TAG=$(python3 -c 'import uuid; print(uuid.uuid4().hex[:6])')
LON=$(python3 -c "print(round(99.0 + int('$TAG'[:3], 16) % 400 * 0.03, 2))")
LAT=$(python3 -c "print(round(24.0 + int('$TAG'[3:], 16) % 100 * 0.03, 2))")
square() {  # square LON LAT SIZE: a GeoJSON polygon
  python3 -c 'import json, sys; x, y, s = map(float, sys.argv[1:]);
print(json.dumps({"type": "Polygon", "coordinates": [[[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]]}))' "$@"
}
AREA=$(square "$LON" "$LAT" 0.02)        # the county and its street
HOME_AREA=$(square "$LON" "$LAT" 0.01)   # the community and its grid: the south-west quarter
read -r MARK_LON MARK_LAT < <(python3 -c "print(round($LON + 0.015, 3), round($LAT + 0.015, 3))")

say "a county admin, county ${TAG^^} → street → community, a security grid and its worker"
call POST "$IDENTITY/users" 201 "${json[@]}" -H "Authorization: Bearer $ADMIN_TOKEN" -d "{
  \"kind\":\"staff\",\"name\":\"县级管理员\",\"username\":\"county-$TAG\",\"password\":\"county-$TAG-password\",
  \"grants\":[{\"role\":\"county_admin\",\"scope\":\"county\"}]}" >/dev/null
COUNTY=$(token "\"username\":\"county-$TAG\",\"password\":\"county-$TAG-password\"")
as_county=(-H "Authorization: Bearer $COUNTY")
division() {  # division KIND CODE PARENT NAME BOUNDARY: the new division's id
  call POST "$GRIDS/divisions" 201 "${json[@]}" "${as_county[@]}" -d "{\"code\":\"$2\",\"name\":\"$4\",
    \"kind\":\"$1\",\"parent_code\":$3,\"boundary\":$5}" | field id
}
division county "FS-${TAG^^}" null "首会县${TAG^^}" "$AREA" >/dev/null
division street "FS-${TAG^^}-1" "\"FS-${TAG^^}\"" "首会街道" "$AREA" >/dev/null
COMMUNITY=$(division community "FS-${TAG^^}-1-1" "\"FS-${TAG^^}-1\"" "首会社区" "$HOME_AREA")
GRID=$(call POST "$GRIDS/grids" 201 "${json[@]}" "${as_county[@]}" -d "{\"network\":\"security\",
  \"code\":\"FS-${TAG^^}-S-01\",\"name\":\"首会社区1号网格\",\"level\":1,\"division_id\":$COMMUNITY,
  \"boundary\":$HOME_AREA}" | field id)
WORKER=$(call POST "$IDENTITY/users" 201 "${json[@]}" "${as_county[@]}" -d "{\"kind\":\"staff\",
  \"name\":\"网格员\",\"username\":\"worker-$TAG\",\"password\":\"worker-$TAG-password\",
  \"grants\":[{\"role\":\"grid_worker\",\"scope\":\"grid:$GRID\"}]}" | field id)
call POST "$GRIDS/grids/$GRID/staff" 201 "${json[@]}" "${as_county[@]}" \
  -d "{\"user_id\":\"$WORKER\",\"role\":\"grid_worker\"}" >/dev/null
echo "grid $GRID, worker $WORKER"

# dispatch routes from its own copy of grids' events, which arrive in order: once a
# community made last has reached it, the grid and its worker have too.
division community "FS-${TAG^^}-1-2" "\"FS-${TAG^^}-1\"" "标记社区" "$(square "$MARK_LON" "$MARK_LAT" 0.001)" >/dev/null
eventually "$PATIENCE" "dispatch to learn the county from grids' events" \
  call GET "$DISPATCH/communities/FS-${TAG^^}-1-2/settings" 200 "${as_county[@]}" >/dev/null

PHONE=139$(python3 -c 'import random; print(f"{random.randrange(10**8):08d}")')
MASKED=${PHONE:0:3}****${PHONE: -4}
say "a resident asks for a code by SMS ($MASKED) and registers with it"
call POST "$IDENTITY/codes" 202 "${json[@]}" -d "{\"phone\":\"$PHONE\",\"purpose\":\"register\"}" >/dev/null
texted_code() {  # the code in the last text to the phone, from the development SMS gateway's log
  ${SMS_LOGS:-$COMPOSE logs sms-sink} 2>/dev/null | python3 -c 'import json, re, sys
# compose prefixes (and may colour) each line: keep the JSON the gateway printed
lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in sys.stdin]
texts = [json.loads(line[line.index("{"):line.rindex("}") + 1]) for line in lines if "\"sms_to\"" in line]
texts = [t["text"] for t in texts if t["sms_to"] == sys.argv[1]]
print(re.search(r"(?<![0-9])[0-9]{6}(?![0-9])", texts[-1])[0])' "$MASKED"
}
eventually "$PATIENCE" "the code to be texted (identity → notify → sms-sink)" texted_code >/dev/null
CODE=$(texted_code)
call POST "$IDENTITY/residents" 201 "${json[@]}" \
  -d "{\"phone\":\"$PHONE\",\"code\":\"$CODE\",\"name\":\"李四\",\"password\":\"correct horse $TAG\"}" >/dev/null
RTOKEN=$(token "\"phone\":\"$PHONE\",\"password\":\"correct horse $TAG\"")
as_resident=(-H "Authorization: Bearer $RTOKEN")

say "she reports a safety hazard in the grid"
PLACE=$(python3 -c "import json; print(json.dumps({'lon': $LON + 0.005, 'lat': $LAT + 0.005}))")
submit() {  # intake learns places from grids' events: until then the place is refused
  call POST "$INTAKE/petitions" 201 "${json[@]}" "${as_resident[@]}" -H "Idempotency-Key: first-session-$TAG" \
    -d "{\"category\":\"safety_hazard\",\"description\":\"楼道里堆满杂物，挡住了消防通道\",\"place\":$PLACE}"
}
eventually "$PATIENCE" "intake to accept the petition" submit >/dev/null
PETITION=$(submit | field id)  # the same petition again: the key makes the retry safe
echo "petition $PETITION"

say "her timeline: submitted, opened, assigned to the grid"
assigned() {
  call GET "$INTAKE/petitions/$PETITION/timeline" 200 "${as_resident[@]}" \
    | python3 -c 'import json, sys; steps = json.load(sys.stdin)["steps"]
[print(s["kind"], s["text"]) for s in steps]
sys.exit(0 if "assigned" in [s["kind"] for s in steps] else 1)'
}
eventually "$PATIENCE" "the petition to be assigned (intake → dispatch → intake)" assigned >/dev/null
assigned

say "everything the platform holds about her, from every service"
call GET "$IDENTITY/me/personal-data/download" 200 "${as_resident[@]}" \
  | python3 -c 'import json, sys; print(", ".join(sorted(json.load(sys.stdin)["services"])))'

say "first session: done"
