#!/usr/bin/env bash
# The web UI over HTTP (control/ui.c, control/api_session.c): page URLs answer
# index.html, assets have their Content-Type, an ETag (304 when unchanged) and
# a strict Content-Security-Policy; unknown /ui/ paths are 404. With --auth the
# UI signs in with a token: an HttpOnly SameSite=Strict cookie holding no
# token, CSRF refused without X-CSRF-Token, revoked tokens end their sessions,
# sign-out ends the session, and no token reaches the log.
set -u
source "$(dirname "$0")/../harness/lib.sh"
dm_e2e_setup
base=http://127.0.0.1:$port

# ---- without --auth: pages and assets ----------------------------------------
export DATAMESH_HISTORY_INTERVAL_MS=200
start --demo || exit 1
hdr=$(curl -s -D - -o "$data/index" "$base/")
[[ $hdr == *"200 OK"* && $hdr == *"Content-Type: text/html; charset=utf-8"* ]] && grep -q '<script type="module" src="/ui/app.js">' "$data/index" \
  && ok root_serves_index || bad root_serves_index "$hdr"
[[ $hdr == *"Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'"* && $hdr == *"frame-ancestors 'none'"* ]] \
  && ok csp_strict || bad csp_strict "$hdr"
[[ $hdr == *"X-Content-Type-Options: nosniff"* && $hdr == *"Cache-Control: no-cache"* ]] && ok nosniff_nocache || bad nosniff_nocache "$hdr"
! grep -qi '<script>\|<script [^>]*>[^<]\|<style\|style="\| on[a-z]*="' "$data/index" && ok no_inline_script_or_style || bad no_inline_script_or_style "$(cat "$data/index")"
for page in /catalog /sources/plays /pipelines /pipelines/us-plays /lineage "/lineage?node=plays.country" /registry /editor /signin /sql; do
  code=$(curl -s -o "$data/p" -w '%{http_code} %{content_type}' "$base$page")
  [[ $code == "200 text/html; charset=utf-8" ]] && cmp -s "$data/p" "$data/index" && ok "page $page" || bad "page $page" "$code"
done
for a in app.js:text/javascript app.css:text/css favicon.svg:image/svg+xml lib.js:text/javascript; do
  f=${a%%:*} t=${a#*:}
  ct=$(curl -s -o "$data/a" -w '%{http_code} %{content_type}' "$base/ui/$f")
  [[ $ct == "200 $t"* ]] && cmp -s "$data/a" "$DM_SOURCE_DIR/ui/$f" && ok "asset $f" || bad "asset $f" "$ct"
done
etag=$(curl -s -D - -o /dev/null "$base/ui/app.js" | tr -d '\r' | sed -n 's/^ETag: //p')
[[ $etag == \"*\" ]] && ok etag || bad etag "$etag"
code=$(curl -s -o "$data/b" -w '%{http_code} %{size_download}' -H "If-None-Match: $etag" "$base/ui/app.js")
[[ $code == "304 0" ]] && ok etag_304 || bad etag_304 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'If-None-Match: "stale"' "$base/ui/app.js")
[[ $code == 200 ]] && ok etag_changed_200 || bad etag_changed_200 "$code"
for p in /ui/nope.js /ui/ /ui/a/b.js "/ui/..%2Fcontrol%2Fui.c" /ui/embed.cmake; do
  body=$(curl -s -w ' %{http_code}' "$base$p")
  [[ $body == *' 404' ]] && ok "unknown $p 404" || bad "unknown $p 404" "$body"
done
# Every module the app imports is served (a typo would break the app in the browser).
missing=$(grep -ho "from '\./[a-z]*\.js'" "$DM_SOURCE_DIR"/ui/*.js | sort -u | sed "s/from '\.\///; s/'//" | while read -r m; do
  [[ $(curl -s -o /dev/null -w '%{http_code}' "$base/ui/$m") == 200 ]] || echo "$m"; done)
[[ -z $missing ]] && ok imports_served || bad imports_served "$missing"
# A first load (index and every asset) stays under 300 KB.
total=0
for f in "$DM_SOURCE_DIR"/ui/*.{html,js,css,svg}; do
  n=$(curl -s -o /dev/null -w '%{size_download}' "$base/ui/$(basename "$f")"); total=$((total + n))
done
((total > 10000 && total < 300000)) && ok "first_load_${total}_bytes" || bad first_load_under_300k "$total"
# Catalog paging for the UI.
j=$(curl -s "$base/api/v1/catalog?limit=1&offset=1")
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["total"]==3 and len(d["items"])==1' "$j" 2>/dev/null \
  && ok catalog_paging || bad catalog_paging "$j"
j=$(curl -s "$base/api/v1/catalog?connector=derived")
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert [s["metadata"]["name"] for s in d["items"]]==["us-plays"]' "$j" 2>/dev/null \
  && ok catalog_filter || bad catalog_filter "$j"
j=$(curl -s "$base/api/v1/pipelines?name=PLAYS")
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["total"]==1' "$j" 2>/dev/null && ok list_name_filter || bad list_name_filter "$j"
for _ in $(seq 50); do
  j=$(curl -s "$base/api/v1/sources/plays/partitions")
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert len(d["partitions"])==2 and d["records"]>0 and d["size_bytes"]>0' "$j" 2>/dev/null && break
  sleep 0.2
done
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert len(d["partitions"])==2 and d["records"]>0 and d["size_bytes"]>0' "$j" 2>/dev/null \
  && ok partitions || bad partitions "$j"
j=$(curl -s -w ' %{http_code}' "$base/api/v1/pipelines/us-plays/deadletters")
[[ $j == *'"items":[]'*'"topic":"pipeline.us-plays.dlq"'*' 200' ]] && ok deadletters_empty || bad deadletters_empty "$j"
j=$(curl -s -w ' %{http_code}' "$base/api/v1/pipelines/nope/deadletters")
[[ $j == *' 404' ]] && ok deadletters_unknown_404 || bad deadletters_unknown_404 "$j"
j=$(curl -s -X POST "$base/api/v1/session")
[[ $j == *'"auth":false'* ]] && ok session_without_auth || bad session_without_auth "$j"
# Without --auth, a page of another site cannot make a browser change anything.
spec0='kind: Source
metadata: {name: evil, owner: x}
spec: {connector: ingest, schema: {type: record, name: E, fields: [{name: id, type: long}]}}'
j=$(curl -s -w ' %{http_code}' -H 'Origin: http://evil.example' -H 'Content-Type: text/plain' --data-binary "$spec0" "$base/api/v1/apply")
[[ $j == *' 403' && $j == *'another site'* ]] && ok cross_site_post_403 || bad cross_site_post_403 "$j"
j=$(curl -s -w ' %{http_code}' -H 'Origin: null' -X DELETE "$base/api/v1/pipelines/us-plays")
[[ $j == *' 403' ]] && ok null_origin_403 || bad null_origin_403 "$j"
j=$(curl -s -w ' %{http_code}' -H "Origin: $base" --data-binary "$spec0" "$base/api/v1/apply?dry_run=true")
[[ $j == *' 200' ]] && ok same_origin_post_ok || bad same_origin_post_ok "$j"
j=$(curl -s -w ' %{http_code}' -H "Origin: https://dm.example" -H "X-Forwarded-Host: dm.example" --data-binary "$spec0" "$base/api/v1/apply?dry_run=true")
[[ $j == *' 200' ]] && ok proxied_origin_ok || bad proxied_origin_ok "$j"
# The catalog the endpoint keeps follows every change at once.
total_of() { curl -s "$base/api/v1/catalog?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])'; }
t0=$(total_of)
curl -s -o /dev/null --data-binary "${spec0//evil/kept}" "$base/api/v1/apply"
t1=$(total_of); hit=$(curl -s "$base/api/v1/catalog?q=kept" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
curl -s -o /dev/null -X DELETE "$base/api/v1/sources/kept"
t2=$(total_of)
[[ $t0 == 3 && $t1 == 4 && $hit == 1 && $t2 == 3 ]] && ok catalog_follows_changes || bad catalog_follows_changes "$t0 $t1 $hit $t2"
j=$(curl -s -o /dev/null -w '%{http_code}' -H 'Origin: http://evil.example' "$base/api/v1/catalog")
[[ $j == 200 ]] && ok cross_site_get_ok || bad cross_site_get_ok "$j"
# The last hour of a pipeline: samples every DATAMESH_HISTORY_INTERVAL_MS (200 ms here).
check_history='import json,sys
d=json.loads(sys.argv[1]); s=d["samples"]
assert d["interval_ms"]==200 and len(s)>=3, len(s)
assert [x["processor"] for x in s[-1]["steps"]]==["filter","project","enrich"]
assert s[-1]["consumed"]>s[0]["consumed"] and s[-1]["steps"][0]["in"]>s[0]["steps"][0]["in"]
assert all(a["t"]<b["t"] for a,b in zip(s,s[1:]))
assert all(x["lag_seconds"]>=0 for x in s)
n=s[-1]["e2e_count"]-s[0]["e2e_count"]   # its file sink: source commit to written
assert n>0 and 0<=(s[-1]["e2e_sum_seconds"]-s[0]["e2e_sum_seconds"])/n<60, n'
for _ in $(seq 50); do
  j=$(curl -s "$base/api/v1/pipelines/us-plays/history")
  python3 -c "$check_history" "$j" 2>/dev/null && break
  sleep 0.2
done
python3 -c "$check_history" "$j" && ok history_moves || bad history_moves "$j"
# After 120 samples the oldest go: the window slides, still 120, in order.
for _ in $(seq 200); do
  j=$(curl -s "$base/api/v1/pipelines/us-plays/history")
  n=$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])["samples"]))' "$j")
  [[ $n -ge 120 ]] && break
  sleep 0.25
done
sleep 1
j2=$(curl -s "$base/api/v1/pipelines/us-plays/history")
python3 -c 'import json,sys
a=json.loads(sys.argv[1])["samples"]; b=json.loads(sys.argv[2])["samples"]
assert len(a)==120 and len(b)==120, (len(a), len(b))
assert b[0]["t"]>a[0]["t"] and all(x["t"]<y["t"] for x,y in zip(b,b[1:]))
assert b[-1]["consumed"]>=b[0]["consumed"]' "$j" "$j2" && ok history_window_slides || bad history_window_slides "$n samples"
j=$(curl -s -w ' %{http_code}' "$base/api/v1/pipelines/nope/history")
[[ $j == *' 404' && $j == *'no history'* ]] && ok history_unknown_404 || bad history_unknown_404 "$j"
# A restart keeps the history (written to the store at stop): the samples of before are there.
t_before=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["samples"][-1]["t"])' "$j2")
stop
start --demo || exit 1
j=$(curl -s "$base/api/v1/pipelines/us-plays/history")
python3 -c 'import json,sys
s=json.loads(sys.argv[1])["samples"]
assert any(x["t"]==int(sys.argv[2]) for x in s), (len(s), s[:1])
assert all(a["t"]<b["t"] for a,b in zip(s,s[1:]))' "$j" "$t_before" && ok history_survives_restart || bad history_survives_restart "${j:0:300}"
stop

# ---- with --auth: signing in --------------------------------------------------
port=$(dm_free_port); base=http://127.0.0.1:$port
dm_controller_start "$data/auth" "$port" "$data/auth.log" --auth || exit 1
pid=$dm_pid
admin=$(cat "$data/auth/admin.token")
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/catalog")
[[ $code == 200 ]] && ok pages_public || bad pages_public "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/api/v1/catalog")
[[ $code == 401 ]] && ok data_needs_auth || bad data_needs_auth "$code"
body=$(curl -s -w ' %{http_code}' -X POST -H "Authorization: Bearer dmt_000000000000_$(printf '0%.0s' $(seq 64))" "$base/api/v1/session")
[[ $body == *' 401' && $body == *'unknown or invalid token'* ]] && ok bad_token_refused || bad bad_token_refused "$body"
body=$(curl -s -w ' %{http_code}' -X POST "$base/api/v1/session")
[[ $body == *' 401' ]] && ok no_token_refused || bad no_token_refused "$body"
hdr=$(curl -s -D - -o "$data/s.json" -X POST -H "Authorization: Bearer $admin" "$base/api/v1/session" | tr -d '\r')
cookie=$(sed -n 's/^Set-Cookie: //p' <<<"$hdr")
sid=$(sed -n 's/^dm_session=\([0-9a-f]*\);.*/\1/p' <<<"$cookie")
[[ ${#sid} == 64 && $cookie == *"HttpOnly"* && $cookie == *"SameSite=Strict"* && $cookie == *"Path=/"* && $cookie != *Secure* ]] \
  && ok cookie_flags || bad cookie_flags "$cookie"
[[ $cookie != *"${admin#dmt_}"* && $(cat "$data/s.json") != *"${admin:17}"* ]] && ok cookie_holds_no_token || bad cookie_holds_no_token "$cookie"
csrf=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["csrf"])' "$data/s.json")
[[ ${#csrf} == 64 && $csrf != "$sid" ]] && ok csrf_given || bad csrf_given "$(cat "$data/s.json")"
code=$(curl -s -o /dev/null -w '%{http_code}' -b "dm_session=$sid" "$base/api/v1/catalog")
[[ $code == 200 ]] && ok cookie_reads || bad cookie_reads "$code"
spec='kind: Source
metadata: {name: ui-made, owner: admin}
spec: {connector: ingest, schema: {type: record, name: U, fields: [{name: id, type: long}]}}'
body=$(curl -s -w ' %{http_code}' -b "dm_session=$sid" --data-binary "$spec" "$base/api/v1/apply")
[[ $body == *' 403' && $body == *'X-CSRF-Token'* ]] && ok csrf_missing_403 || bad csrf_missing_403 "$body"
body=$(curl -s -w ' %{http_code}' -b "dm_session=$sid" -H "X-CSRF-Token: $sid" --data-binary "$spec" "$base/api/v1/apply")
[[ $body == *' 403' ]] && ok csrf_wrong_403 || bad csrf_wrong_403 "$body"
body=$(curl -s -w ' %{http_code}' -b "dm_session=$sid" -H "X-CSRF-Token: $csrf" --data-binary "$spec" "$base/api/v1/apply")
[[ $body == *' 200' ]] && ok csrf_ok_applies || bad csrf_ok_applies "$body"
body=$(curl -s -b "dm_session=$sid" "$base/api/v1/session")
[[ $body == *"\"csrf\":\"$csrf\""* && $body == *'"role":"admin"'* ]] && ok session_get || bad session_get "$body"
code=$(curl -s -o /dev/null -w '%{http_code}' -b "dm_session=$(printf 'a%.0s' $(seq 64))" "$base/api/v1/catalog")
[[ $code == 401 ]] && ok forged_cookie_401 || bad forged_cookie_401 "$code"
# A restart keeps the session: same cookie, same CSRF token; the store holds neither id nor token.
kill -TERM "$pid"; wait "$pid" 2>/dev/null
dm_controller_start "$data/auth" "$port" "$data/auth.log" --auth || exit 1
pid=$dm_pid
body=$(curl -s -b "dm_session=$sid" "$base/api/v1/session")
[[ $body == *"\"csrf\":\"$csrf\""* && $body == *'"role":"admin"'* ]] && ok session_survives_restart || bad session_survives_restart "$body"
! grep -rqa --exclude=admin.token -e "$sid" -e "${admin:17}" "$data/auth" && ok store_holds_no_session_id || bad store_holds_no_session_id "$(grep -rla "$sid" "$data/auth")"
# A viewer's session: its role holds (no apply), and revoking its token ends it.
v=$(curl -s -X POST -H "Authorization: Bearer $admin" -d '{"owner":"team-v","role":"viewer"}' "$base/api/v1/tokens")
vtok=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$v"); vid=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$v")
vhdr=$(curl -s -D - -o "$data/v.json" -X POST -H "Authorization: Bearer $vtok" "$base/api/v1/session" | tr -d '\r')
vsid=$(sed -n 's/^Set-Cookie: dm_session=\([0-9a-f]*\);.*/\1/p' <<<"$vhdr")
vcsrf=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["csrf"])' "$data/v.json")
body=$(curl -s -w ' %{http_code}' -b "dm_session=$vsid" -H "X-CSRF-Token: $vcsrf" --data-binary "$spec" "$base/api/v1/apply")
[[ $body == *' 403' && $body == *viewer* ]] && ok viewer_session_cannot_apply || bad viewer_session_cannot_apply "$body"
curl -s -o /dev/null -X DELETE -H "Authorization: Bearer $admin" "$base/api/v1/tokens/$vid"
body=$(curl -s -w ' %{http_code}' -b "dm_session=$vsid" "$base/api/v1/catalog")
[[ $body == *' 401' && $body == *'revoked or expired'* ]] && ok revoked_token_ends_session || bad revoked_token_ends_session "$body"
# Signing out: CSRF needed; then the cookie is cleared and the session is gone.
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE -b "dm_session=$sid" "$base/api/v1/session")
[[ $code == 403 ]] && ok signout_needs_csrf || bad signout_needs_csrf "$code"
hdr=$(curl -s -D - -o /dev/null -X DELETE -b "dm_session=$sid" -H "X-CSRF-Token: $csrf" "$base/api/v1/session" | tr -d '\r')
[[ $hdr == *"200 OK"* && $hdr == *"Set-Cookie: dm_session=; "*"Max-Age=0"* ]] && ok signout_clears_cookie || bad signout_clears_cookie "$hdr"
code=$(curl -s -o /dev/null -w '%{http_code}' -b "dm_session=$sid" "$base/api/v1/catalog")
[[ $code == 401 ]] && ok signed_out_401 || bad signed_out_401 "$code"
# Audit: sign-in and sign-out are there; no token or session id anywhere in the log.
a=$(curl -s -H "Authorization: Bearer $admin" "$base/api/v1/audit")
[[ $a == *'sign in to the UI'* && $a == *'sign out of the UI'* ]] && ok audited || bad audited "$a"
kill -TERM "$pid"; wait "$pid" 2>/dev/null
! grep -q -e "${admin:17}" -e "${vtok:17}" -e "$sid" -e "$csrf" "$data/auth.log" "$data/auth/"*.log 2>/dev/null && ok no_secrets_in_log || bad no_secrets_in_log "found"
pid=
dm_e2e_summary
