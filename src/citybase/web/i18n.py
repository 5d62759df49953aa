"""Texts of the pages: Chinese first, English available."""

from __future__ import annotations

from typing import Any

LANGS = {"zh": "中文", "en": "English"}

_TEXTS = {
    "zh": {
        "title": "城市数字底座", "subtitle": "时空底座 · 基础库", "map": "辖区地图", "streets": "街镇",
        "communities": "居村", "grids": "网格", "buildings": "建筑", "persons": "自然人", "legal_entities": "法人",
        "departments": "部门", "registry": "基础库", "spatial": "时空底座", "show_grids": "显示网格",
        "locate_hint": "点击地图查询所在网格", "grid": "网格", "community": "居村", "street": "街镇",
        "loading": "加载中…", "api_docs": "接口文档", "outside": "不在辖区网格内",
    },
    "en": {
        "title": "citybase", "subtitle": "Spatial base · Base registries", "map": "District map", "streets": "Streets",
        "communities": "Communities", "grids": "Grids", "buildings": "Buildings", "persons": "Persons",
        "legal_entities": "Legal entities", "departments": "Departments", "registry": "Base registries",
        "spatial": "Spatial base", "show_grids": "Show grids", "locate_hint": "Click the map to find the grid",
        "grid": "Grid", "community": "Community", "street": "Street", "loading": "Loading…", "api_docs": "API docs",
        "outside": "Outside every grid of the district",
    },
}

# The pages of the incident loop: sign-in, dispatcher workbench, handler tasks, citizen reports.
_OPS = {
    "zh": {
        "nav_map": "地图", "nav_report": "我要报事", "nav_workbench": "派单工作台", "nav_tasks": "处置任务",
        "nav_login": "登录",
        # sign-in
        "login_title": "登录", "login_intro": "粘贴管理员为你签发的访问令牌（cb_…）。令牌只保存在本浏览器中。",
        "token": "访问令牌", "sign_in": "登录", "sign_out": "退出", "signed_in_as": "当前用户",
        "not_signed_in": "未登录", "username": "用户名", "roles": "角色", "department_id": "部门",
        "token_invalid": "令牌无效或已失效", "need_login": "请先登录", "go_on": "继续前往",
        "wrong_role": "当前账号的角色不能使用此页面", "switch_user": "换个账号登录",
        # workbench
        "workbench": "派单工作台", "queue": "待办工单", "filter_status": "状态", "filter_street": "街镇",
        "filter_category": "类别", "all_open": "全部未结", "all": "全部", "refresh": "刷新", "count_of": "共 {n} 件",
        "empty_queue": "没有符合条件的工单", "pick_incident": "在左侧选择一个工单",
        "description": "问题描述", "address": "地址", "location": "位置", "reporter": "报告人", "phone": "电话",
        "category": "类别", "suggested": "系统建议", "confidence": "置信度", "confirmed": "已确认",
        "unconfirmed": "待确认", "routing": "派单依据", "main_department": "主办部门", "deadline": "处置时限",
        "time_left": "剩余 {t}", "overdue": "超时 {t}", "no_deadline": "未计时", "suspended": "已挂起",
        "priority": "紧急程度", "channel": "来源", "created_at": "受理时间", "tasks": "处置任务",
        "timeline": "办理过程", "reporters": "报告人", "no_tasks": "尚未派遣", "repeat": "重复 {n} 次",
        "extension_pending": "申请延期 {n} 天：{r}", "task_result": "处置结果", "role": "角色", "status": "状态",
        "actions": "派单操作", "refused": "操作被拒绝", "fix": "处理建议", "done_ok": "已完成：{a}",
        "reason": "理由", "note": "说明", "into": "并入工单（编号或ID）", "approve": "同意", "refuse": "不同意",
        "passed": "核查通过", "not_passed": "核查未通过", "days": "天数", "result": "处置结果",
        "act_register": "立案", "act_reject": "不予立案", "act_dispatch": "派遣", "act_merge": "合并",
        "act_extension_decision": "延期审批", "act_suspend": "挂起", "act_resume": "恢复", "act_close": "结案",
        "act_verify": "核查", "act_accept": "签收", "act_first_contact": "先行联系", "act_extension": "申请延期",
        "act_return": "退单", "act_complete": "办结",
        "hotline": "12345 来电登记", "caller_phone": "来电号码", "caller_name": "来电人", "call_text": "来电内容",
        "address_words": "地址（文字）", "submit": "提交", "cancel": "取消", "hotline_ok": "已登记工单 {c}",
        "merged_into": "与已有工单 {c} 重复，已自动合并",
        "map_point": "事发位置", "dept": "部门 #{id}", "minutes": "{n}分钟", "hours": "{n}小时", "days_n": "{n}天",
        # handler tasks
        "department": "承办部门", "assigned_at": "派发时间", "tasks_title": "处置任务", "my_tasks": "本部门任务", "open_tasks": "待办", "done_tasks": "已办结",
        "empty_tasks": "暂无任务", "incident": "工单", "accepted_at": "签收时间", "task_of": "任务 #{id}",
        # citizen report
        "report_title": "我要报事", "report_intro": "发现城市管理问题？告诉我们在哪里、是什么问题。",
        "service": "问题类型", "choose_service": "请选择问题类型", "describe": "问题描述",
        "address_hint": "填写地址，或在地图上点击事发位置", "point": "地图选点", "clear_point": "清除选点",
        "your_name": "您的称呼（可选）", "your_phone": "联系电话（可选）", "send": "提交报事",
        "report_ok": "已提交，您的受理编号：", "notice": "提示", "lookup": "查询办理进度", "request_id": "受理编号",
        "look_up": "查询", "status_notes": "办理情况", "requested": "提交时间", "updated": "更新时间",
        "agency": "承办部门", "service_name": "问题类型", "no_point": "未选点",
        "open311_open": "办理中", "open311_closed": "已办结", "expected": "应办结时间", "progress": "办理进度",
    },
    "en": {
        "nav_map": "Map", "nav_report": "Report a problem", "nav_workbench": "Dispatch workbench",
        "nav_tasks": "Handler tasks", "nav_login": "Sign in",
        "login_title": "Sign in", "login_intro": "Paste the access token (cb_…) an admin issued to you. "
                                                 "It is kept in this browser only.",
        "token": "Access token", "sign_in": "Sign in", "sign_out": "Sign out", "signed_in_as": "Signed in as",
        "not_signed_in": "Not signed in", "username": "Username", "roles": "Roles", "department_id": "Department",
        "token_invalid": "The token is invalid or expired", "need_login": "Please sign in first", "go_on": "Continue to",
        "wrong_role": "Your account's roles may not use this page", "switch_user": "Sign in as someone else",
        "workbench": "Dispatch workbench", "queue": "Open incidents", "filter_status": "Status",
        "filter_street": "Street", "filter_category": "Category", "all_open": "All open", "all": "All",
        "refresh": "Refresh", "count_of": "({n})", "empty_queue": "No incident matches",
        "pick_incident": "Pick an incident on the left",
        "description": "Description", "address": "Address", "location": "Location", "reporter": "Reporter",
        "phone": "Phone", "category": "Category", "suggested": "Suggested", "confidence": "confidence",
        "confirmed": "confirmed", "unconfirmed": "to confirm", "routing": "Routed because",
        "main_department": "Main department", "deadline": "Deadline", "time_left": "{t} left",
        "overdue": "{t} overdue", "no_deadline": "clock not started", "suspended": "suspended",
        "priority": "Priority", "channel": "Channel", "created_at": "Received", "tasks": "Tasks",
        "timeline": "Timeline", "reporters": "Reporters", "no_tasks": "Not dispatched yet", "repeat": "repeated {n}×",
        "extension_pending": "Extension of {n} days requested: {r}", "task_result": "Result", "role": "Role",
        "status": "Status", "actions": "Dispatcher actions", "refused": "Refused", "fix": "How to fix",
        "done_ok": "Done: {a}", "reason": "Reason", "note": "Note", "into": "Into incident (code or id)",
        "approve": "Approve", "refuse": "Refuse", "passed": "Fixed", "not_passed": "Not fixed", "days": "Days",
        "result": "Result",
        "act_register": "Register", "act_reject": "Reject", "act_dispatch": "Dispatch", "act_merge": "Merge",
        "act_extension_decision": "Decide extension", "act_suspend": "Suspend", "act_resume": "Resume",
        "act_close": "Close", "act_verify": "Verify", "act_accept": "Accept", "act_first_contact": "First contact",
        "act_extension": "Request extension", "act_return": "Return", "act_complete": "Complete",
        "hotline": "12345 hotline call", "caller_phone": "Caller phone", "caller_name": "Caller name",
        "call_text": "What the caller said", "address_words": "Address (in words)", "submit": "Submit",
        "cancel": "Cancel", "hotline_ok": "Incident {c} registered", "merged_into": "Duplicate of {c}: merged into it",
        "map_point": "Location", "dept": "Department #{id}", "minutes": "{n} min", "hours": "{n} h", "days_n": "{n} d",
        "department": "Department", "assigned_at": "Assigned", "tasks_title": "Handler tasks", "my_tasks": "My department's tasks", "open_tasks": "Open",
        "done_tasks": "Done", "empty_tasks": "No tasks", "incident": "Incident", "accepted_at": "Accepted",
        "task_of": "Task #{id}",
        "report_title": "Report a problem", "report_intro": "Seen a problem in the city? Tell us what and where.",
        "service": "Type of problem", "choose_service": "Choose the type of problem", "describe": "Description",
        "address_hint": "Give the address, or click the place on the map", "point": "Point on the map",
        "clear_point": "Clear the point", "your_name": "Your name (optional)", "your_phone": "Phone (optional)",
        "send": "Send report", "report_ok": "Sent. Your request id:", "notice": "Notice", "lookup": "Look up a request",
        "request_id": "Request id", "look_up": "Look up", "status_notes": "Status notes", "requested": "Requested",
        "updated": "Updated", "agency": "Agency", "service_name": "Type", "no_point": "No point",
        "open311_open": "open", "open311_closed": "closed", "expected": "Expected by", "progress": "Progress",
    },
}

# The licence pages (电子证照): the verifier (亮证核验) and the holder's 我的证照.
_LICENCES = {
    "zh": {
        "nav_licences": "我的证照", "nav_verify": "证照核验",
        "verify_title": "电子证照核验", "verify_intro": "扫描证照二维码会打开本页；也可粘贴证照码或核验链接。签名在本机浏览器中用平台公布的公钥验证，不经过服务器。",
        "verify_token": "证照码或核验链接", "verify_button": "离线验签", "verify_online": "在线核验状态",
        "sig_valid": "签名有效：证面内容未被篡改（Ed25519，密钥 {kid}）", "sig_bad_signature": "签名无效：证面内容已被改动或不是本平台签发",
        "sig_unknown_key": "未知签名密钥 {kid}：请联网后重新打开本页以获取公钥", "sig_malformed": "不是电子证照码",
        "sig_no_crypto": "此浏览器无法验签：请通过 HTTPS 或本机地址打开本页，并使用较新的浏览器",
        "expired_offline": "证面有效期已过（{d}）", "online_valid": "在线核验：证照有效", "online_revoked": "在线核验：证照已注销（{r}）",
        "online_expired": "在线核验：证照已过期", "online_unknown": "在线核验：证照库中没有此证照",
        "online_failed": "无法在线核验（离线？）", "keys_cached": "已缓存 {n} 个公钥，可离线验签", "keys_missing": "尚无公钥：请联网打开一次本页",
        "lic_identifier": "证照标识", "lic_type": "证照类型", "lic_holder": "持证主体", "lic_holder_code": "证件号码/统一社会信用代码",
        "lic_issuer": "颁发机构", "lic_issued": "颁发日期", "lic_expires": "有效期至", "long_term": "长期",
        "mine_title": "我的证照", "mine_intro": "您的电子证照。出示二维码即可亮证，对方手机扫码离线核验。",
        "mine_empty": "暂无电子证照", "mine_not_linked": "当前账号未关联自然人或法人，看不到证照",
        "show_qr": "亮证", "hide_qr": "收起", "open_verifier": "在核验页打开", "uses_title": "用证记录",
        "uses_empty": "尚无用证记录", "use_when": "时间", "use_department": "用证部门", "use_purpose": "用途",
        "use_application": "办件", "use_consent": "授权", "lic_status_valid": "有效", "lic_status_expired": "已过期",
        "lic_status_revoked": "已注销",
    },
    "en": {
        "nav_licences": "My licences", "nav_verify": "Verify a licence",
        "verify_title": "Verify an electronic licence", "verify_intro": "Scanning a licence's QR code opens this page; you can also paste the licence code or link. The signature is checked in your browser with the published public key, without the server.",
        "verify_token": "Licence code or link", "verify_button": "Verify offline", "verify_online": "Check status online",
        "sig_valid": "Signature valid: the licence is as issued (Ed25519, key {kid})", "sig_bad_signature": "Signature invalid: the licence was altered or not issued here",
        "sig_unknown_key": "Unknown signing key {kid}: open this page once online to fetch the public keys", "sig_malformed": "Not an electronic licence code",
        "sig_no_crypto": "This browser cannot verify: open the page over HTTPS (or localhost) in a recent browser",
        "expired_offline": "Past its printed validity ({d})", "online_valid": "Online: the licence is valid", "online_revoked": "Online: the licence was revoked ({r})",
        "online_expired": "Online: the licence has expired", "online_unknown": "Online: the register does not hold this licence",
        "online_failed": "Could not check online (offline?)", "keys_cached": "{n} public key(s) kept: verification works offline", "keys_missing": "No public keys yet: open this page once online",
        "lic_identifier": "Identifier", "lic_type": "Type", "lic_holder": "Holder", "lic_holder_code": "ID number / credit code",
        "lic_issuer": "Issued by", "lic_issued": "Issued", "lic_expires": "Valid until", "long_term": "long-term",
        "mine_title": "My licences", "mine_intro": "Your electronic licences. Show the QR code; the other side verifies it offline with a phone.",
        "mine_empty": "No electronic licences yet", "mine_not_linked": "This account is not linked to a person or a firm, so it holds no licences",
        "show_qr": "Show", "hide_qr": "Hide", "open_verifier": "Open in the verifier", "uses_title": "Who used my licences",
        "uses_empty": "No use recorded yet", "use_when": "When", "use_department": "Department", "use_purpose": "Purpose",
        "use_application": "Application", "use_consent": "Consent", "lic_status_valid": "valid", "lic_status_expired": "expired",
        "lic_status_revoked": "revoked",
    },
}

# Codes the API returns, named for people.
_NAMES: dict[str, dict[str, dict[str, str]]] = {
    "zh": {
        "status": {"received": "待受理", "registered": "已立案", "dispatched": "已派遣", "handling": "处置中",
                   "verifying": "待核查", "closed": "已结案", "rejected": "不予立案", "merged": "已合并"},
        "light": {"red": "超时", "yellow": "临期", "green": "正常", "grey": "未计时"},
        "priority": {"urgent": "紧急", "normal": "一般", "low": "较低"},
        "channel": {"api": "接口", "hotline": "12345热线", "inspector": "网格巡查", "open311": "市民报事",
                    "iot": "物联感知"},
        "task_status": {"pending": "待签收", "accepted": "处置中", "done": "已办结", "returned": "已退单",
                        "cancelled": "已取消"},
        "task_role": {"main": "主办", "assist": "协办"},
        "action": {"receive": "受理", "register": "立案", "reject": "不予立案", "dispatch": "派遣", "merge": "合并",
                   "absorb": "并入重复工单", "accept": "签收", "return": "退单", "complete_task": "部门办结",
                   "complete": "处置完成", "first_contact": "先行联系", "extension_requested": "申请延期",
                   "extension_approved": "同意延期", "extension_refused": "不同意延期", "verify": "核查通过",
                   "verify_failed": "核查未通过", "close": "结案", "suspend": "挂起", "resume": "恢复",
                   "reopen": "重新办理", "rate": "评价", "supervise": "督办"},
    },
    "en": {
        "status": {"received": "received", "registered": "registered", "dispatched": "dispatched",
                   "handling": "handling", "verifying": "verifying", "closed": "closed", "rejected": "rejected",
                   "merged": "merged"},
        "light": {"red": "overdue", "yellow": "due soon", "green": "on time", "grey": "no clock"},
        "priority": {"urgent": "urgent", "normal": "normal", "low": "low"},
        "channel": {"api": "API", "hotline": "12345 hotline", "inspector": "grid inspector", "open311": "citizen report",
                    "iot": "sensor"},
        "task_status": {"pending": "pending", "accepted": "accepted", "done": "done", "returned": "returned",
                        "cancelled": "cancelled"},
        "task_role": {"main": "main", "assist": "assisting"},
        "action": {"receive": "received", "register": "registered", "reject": "rejected", "dispatch": "dispatched",
                   "merge": "merged", "absorb": "absorbed a duplicate", "accept": "accepted", "return": "returned",
                   "complete_task": "task done", "complete": "handling done", "first_contact": "first contact",
                   "extension_requested": "extension requested", "extension_approved": "extension approved",
                   "extension_refused": "extension refused", "verify": "verified", "verify_failed": "verification failed",
                   "close": "closed", "suspend": "suspended", "resume": "resumed", "reopen": "reopened",
                   "rate": "rated", "supervise": "supervised"},
    },
}


def texts(lang: str) -> dict[str, str]:
    return _TEXTS.get(lang, _TEXTS["zh"])


def page_texts(lang: str) -> dict[str, Any]:
    """Every text of the incident-loop pages, with the names of the API's codes under ``names``."""
    lang = lang if lang in LANGS else "zh"
    return {**_TEXTS[lang], **_OPS[lang], **_LICENCES[lang], "names": _NAMES[lang]}
