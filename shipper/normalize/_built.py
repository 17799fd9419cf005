"""Generated from shipper/normalize/fields.py by shipper/normalize/codegen.py: do not edit.

    python -m shipper.normalize.codegen   # after changing a row
"""

# ruff: noqa
from __future__ import annotations

from typing import Any

import orjson

from shipper.normalize.values import format_ms, location, normalize_ip, rules_members


def build_audit(view: dict[str, Any], ms: int, rules: Any, masker: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    tags = 0
    outcome = ""
    doc['@timestamp'] = format_ms(ms)
    o1: dict[str, Any] = {}
    s1 = view.get('id')
    if type(s1) is str and s1:
        o1['id'] = s1
    s2 = view.get('key')
    if type(s2) is str and s2:
        o1['action'] = s2
    s3 = view.get('payload')
    s4 = s3.get('result') if type(s3) is dict else None
    outcome = 'unknown'
    if s4 == 'Success':
        outcome = 'success'
    elif s4 == 'Error':
        outcome = 'failure'
    o1['outcome'] = outcome
    o1['kind'] = 'event'
    o1['module'] = 'logto'
    o1['dataset'] = 'logto.audit'
    family, category, types = rules(view["key"], outcome)
    o1.update(rules_members(category, types))
    if o1:
        doc['event'] = o1
    o2: dict[str, Any] = {}
    s5 = s3.get('error') if type(s3) is dict else None
    if type(s5) is str and s5:
        o2['message'] = s5
    s6 = s5.get('message') if type(s5) is dict else None
    if 'message' not in o2:
        if s6 is not None:
            o2['message'] = s6 if type(s6) is str else orjson.dumps(s6).decode()
    s7 = s5.get('code') if type(s5) is dict else None
    if type(s7) is str or type(s7) is int:
        o2['code'] = str(s7)
    s8 = s5.get('name') if type(s5) is dict else None
    if type(s8) is str and s8:
        o2['type'] = s8
    s9 = s5.get('stack') if type(s5) is dict else None
    if type(s9) is str and s9:
        o2['stack_trace'] = s9
    if o2:
        doc['error'] = o2
    o3: dict[str, Any] = {}
    s10 = view.get('tenantId')
    s11 = view.get('tenant_id')
    if type(s10) is str and s10:
        o3['id'] = s10
    elif type(s11) is str and s11:
        o3['id'] = s11
    if o3:
        doc['organization'] = o3
    o4: dict[str, Any] = {}
    s12 = s3.get('userId') if type(s3) is dict else None
    if type(s12) is str and s12:
        o4['id'] = s12
    s13 = view.get('_names')
    s14 = s13.get('user') if type(s13) is dict else None
    if type(s14) is str and s14:
        o4['name'] = s14
    s15 = s13.get('email') if type(s13) is dict else None
    if type(s15) is str and s15:
        o4['email'] = s15
    if o4:
        doc['user'] = o4
    o5: dict[str, Any] = {}
    s16 = s3.get('ip') if type(s3) is dict else None
    a0s = None
    if type(s16) is str and s16:
        a0s = s16
    a0 = normalize_ip(a0s) if a0s is not None else None
    if a0 is not None:
        o5['ip'] = a0
    o6: dict[str, Any] = {}
    s17 = s3.get('signInContext') if type(s3) is dict else None
    s18 = s17.get('country') if type(s17) is dict else None
    if type(s18) is str and s18:
        o6['country_iso_code'] = s18
    s19 = s17.get('city') if type(s17) is dict else None
    if type(s19) is str and s19:
        o6['city_name'] = s19
    s20 = s17.get('latitude') if type(s17) is dict else None
    s21 = s17.get('longitude') if type(s17) is dict else None
    loc = location(s20, s21)
    if loc is not None:
        o6['location'] = loc
    if o6:
        o5['geo'] = o6
    if o5:
        doc['source'] = o5
    o7: dict[str, Any] = {}
    if a0 is not None:
        o7['ip'] = a0
    if o7:
        doc['client'] = o7
    o8: dict[str, Any] = {}
    s22 = s3.get('userAgentParsed') if type(s3) is dict else None
    s23 = s22.get('browser') if type(s22) is dict else None
    s24 = s23.get('name') if type(s23) is dict else None
    if type(s24) is str and s24:
        o8['name'] = s24
    s25 = s23.get('version') if type(s23) is dict else None
    if type(s25) is str and s25:
        o8['version'] = s25
    o9: dict[str, Any] = {}
    s26 = s22.get('os') if type(s22) is dict else None
    s27 = s26.get('name') if type(s26) is dict else None
    if type(s27) is str and s27:
        o9['name'] = s27
    s28 = s26.get('version') if type(s26) is dict else None
    if type(s28) is str and s28:
        o9['version'] = s28
    if o9:
        o8['os'] = o9
    o10: dict[str, Any] = {}
    s29 = s22.get('device') if type(s22) is dict else None
    s30 = s29.get('model') if type(s29) is dict else None
    if type(s30) is str and s30:
        o10['name'] = s30
    if o10:
        o8['device'] = o10
    s31 = s3.get('userAgent') if type(s3) is dict else None
    s32 = s22.get('ua') if type(s22) is dict else None
    if type(s31) is str and s31:
        o8['original'] = s31
    elif type(s32) is str and s32:
        o8['original'] = s32
    if o8:
        doc['user_agent'] = o8
    o11: dict[str, Any] = {}
    o11['family'] = family
    if type(s10) is str and s10:
        o11['tenant_id'] = s10
    elif type(s11) is str and s11:
        o11['tenant_id'] = s11
    if a0s is not None and a0 is None:
        o11['ip'] = a0s
        tags |= 2
    s33 = s3.get('applicationId') if type(s3) is dict else None
    if type(s33) is str and s33:
        o11['application_id'] = s33
    s34 = s13.get('application') if type(s13) is dict else None
    if type(s34) is str and s34:
        o11['application_name'] = s34
    s35 = s13.get('application_type') if type(s13) is dict else None
    if type(s35) is str and s35:
        o11['application_type'] = s35
    s36 = s3.get('sessionId') if type(s3) is dict else None
    if type(s36) is str and s36:
        o11['session_id'] = s36
    s37 = s3.get('interactionEvent') if type(s3) is dict else None
    if type(s37) is str and s37:
        o11['interaction_event'] = s37
    s38 = s3.get('hookId') if type(s3) is dict else None
    if type(s38) is str and s38:
        o11['hook_id'] = s38
    o11['payload'] = masker.mask(s3 or {})[0]
    if masker.reshaped:
        tags |= 1
    if o11:
        doc['logto'] = o11
    if tags:
        doc['tags'] = [t for i, t in enumerate(('logto_payload_reshaped', 'logto_invalid_ip')) if tags >> i & 1]
    return doc


def build_webhook(view: dict[str, Any], ms: int, rules: Any, masker: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    tags = 0
    outcome = ""
    doc['@timestamp'] = format_ms(ms)
    o1: dict[str, Any] = {}
    s1 = view.get('id')
    if type(s1) is str and s1:
        o1['id'] = s1
    s2 = view.get('key')
    if type(s2) is str and s2:
        o1['action'] = s2
    s3 = view.get('outcome')
    if type(s3) is str and s3:
        o1['outcome'] = s3
    o1['kind'] = 'event'
    o1['module'] = 'logto'
    o1['dataset'] = 'logto.webhook'
    family, category, types = rules(view["key"], outcome)
    o1.update(rules_members(category, types))
    if o1:
        doc['event'] = o1
    o2: dict[str, Any] = {}
    s4 = view.get('payload')
    s5 = s4.get('userId') if type(s4) is dict else None
    s6 = s4.get('user') if type(s4) is dict else None
    s7 = s6.get('id') if type(s6) is dict else None
    if type(s5) is str and s5:
        o2['id'] = s5
    elif type(s7) is str and s7:
        o2['id'] = s7
    s8 = s6.get('username') if type(s6) is dict else None
    s9 = s6.get('name') if type(s6) is dict else None
    s10 = view.get('_names')
    s11 = s10.get('user') if type(s10) is dict else None
    if type(s8) is str and s8:
        o2['name'] = s8
    elif type(s9) is str and s9:
        o2['name'] = s9
    elif type(s11) is str and s11:
        o2['name'] = s11
    s12 = s10.get('email') if type(s10) is dict else None
    if type(s12) is str and s12:
        o2['email'] = s12
    o3: dict[str, Any] = {}
    s13 = view.get('target')
    s14 = s13.get('id') if type(s13) is dict else None
    if type(s14) is str and s14:
        o3['id'] = s14
    s15 = s13.get('username') if type(s13) is dict else None
    s16 = s13.get('name') if type(s13) is dict else None
    if type(s15) is str and s15:
        o3['name'] = s15
    elif type(s16) is str and s16:
        o3['name'] = s16
    if o3:
        o2['target'] = o3
    if o2:
        doc['user'] = o2
    o4: dict[str, Any] = {}
    s17 = s4.get('userIp') if type(s4) is dict else None
    s18 = s4.get('ip') if type(s4) is dict else None
    a0s = None
    if type(s17) is str and s17:
        a0s = s17
    elif type(s18) is str and s18:
        a0s = s18
    a0 = normalize_ip(a0s) if a0s is not None else None
    if a0 is not None:
        o4['ip'] = a0
    if o4:
        doc['source'] = o4
    o5: dict[str, Any] = {}
    if a0 is not None:
        o5['ip'] = a0
    if o5:
        doc['client'] = o5
    o6: dict[str, Any] = {}
    s19 = s4.get('userAgentParsed') if type(s4) is dict else None
    s20 = s19.get('browser') if type(s19) is dict else None
    s21 = s20.get('name') if type(s20) is dict else None
    if type(s21) is str and s21:
        o6['name'] = s21
    s22 = s20.get('version') if type(s20) is dict else None
    if type(s22) is str and s22:
        o6['version'] = s22
    o7: dict[str, Any] = {}
    s23 = s19.get('os') if type(s19) is dict else None
    s24 = s23.get('name') if type(s23) is dict else None
    if type(s24) is str and s24:
        o7['name'] = s24
    s25 = s23.get('version') if type(s23) is dict else None
    if type(s25) is str and s25:
        o7['version'] = s25
    if o7:
        o6['os'] = o7
    o8: dict[str, Any] = {}
    s26 = s19.get('device') if type(s19) is dict else None
    s27 = s26.get('model') if type(s26) is dict else None
    if type(s27) is str and s27:
        o8['name'] = s27
    if o8:
        o6['device'] = o8
    s28 = s4.get('userAgent') if type(s4) is dict else None
    s29 = s19.get('ua') if type(s19) is dict else None
    if type(s28) is str and s28:
        o6['original'] = s28
    elif type(s29) is str and s29:
        o6['original'] = s29
    if o6:
        doc['user_agent'] = o6
    o9: dict[str, Any] = {}
    o10: dict[str, Any] = {}
    s30 = s4.get('method') if type(s4) is dict else None
    if type(s30) is str and s30:
        o10['method'] = s30
    if o10:
        o9['request'] = o10
    o11: dict[str, Any] = {}
    s31 = s4.get('status') if type(s4) is dict else None
    if type(s31) is int:
        o11['status_code'] = s31
    if o11:
        o9['response'] = o11
    if o9:
        doc['http'] = o9
    o12: dict[str, Any] = {}
    s32 = s4.get('path') if type(s4) is dict else None
    if type(s32) is str and s32:
        o12['path'] = s32
    if o12:
        doc['url'] = o12
    o13: dict[str, Any] = {}
    got = [x for x in ((doc.get('user', {})).get('id'), (doc.get('user', {})).get('name'), (doc.get('user', {}).get('target', {})).get('id'), (doc.get('user', {}).get('target', {})).get('name'),) if x is not None]
    if got:
        o13['user'] = list(dict.fromkeys(got))
    if o13:
        doc['related'] = o13
    o14: dict[str, Any] = {}
    o14['family'] = 'webhook'
    if a0s is not None and a0 is None:
        o14['ip'] = a0s
        tags |= 2
    s33 = s4.get('matchedRoute') if type(s4) is dict else None
    if type(s33) is str and s33:
        o14['route'] = s33
    s34 = s4.get('applicationId') if type(s4) is dict else None
    s35 = s4.get('application') if type(s4) is dict else None
    s36 = s35.get('id') if type(s35) is dict else None
    if type(s34) is str and s34:
        o14['application_id'] = s34
    elif type(s36) is str and s36:
        o14['application_id'] = s36
    s37 = s35.get('name') if type(s35) is dict else None
    s38 = s10.get('application') if type(s10) is dict else None
    if type(s37) is str and s37:
        o14['application_name'] = s37
    elif type(s38) is str and s38:
        o14['application_name'] = s38
    s39 = s35.get('type') if type(s35) is dict else None
    s40 = s10.get('application_type') if type(s10) is dict else None
    if type(s39) is str and s39:
        o14['application_type'] = s39
    elif type(s40) is str and s40:
        o14['application_type'] = s40
    s41 = s4.get('sessionId') if type(s4) is dict else None
    if type(s41) is str and s41:
        o14['session_id'] = s41
    s42 = s4.get('interactionEvent') if type(s4) is dict else None
    if type(s42) is str and s42:
        o14['interaction_event'] = s42
    s43 = s4.get('hookId') if type(s4) is dict else None
    if type(s43) is str and s43:
        o14['hook_id'] = s43
    o14['payload'] = masker.mask(s4 or {})[0]
    if masker.reshaped:
        tags |= 1
    if o14:
        doc['logto'] = o14
    if tags:
        doc['tags'] = [t for i, t in enumerate(('logto_payload_reshaped', 'logto_invalid_ip')) if tags >> i & 1]
    return doc
