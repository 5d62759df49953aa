"""The demo's licence catalogue (GB/T 36902 目录信息): each type's stable key, its number within its
department, name, issuing department (by short name), holder kind, declared fields and validity.

A field is (key, Chinese label, English label, personal): personal fields are masked for staff who do not
see personal data in full. The holder's name and ID number (or the firm's name and code) ride on every
licence and are not repeated here."""

from __future__ import annotations

# key: (number, name, English name, department short name, holder kind, fields, validity in years or None)
TYPES: dict[str, tuple[str, str, str, str, str, list[tuple[str, str, str, bool]], int | None]] = {
    "id_card": ("001", "居民身份证", "Resident identity card", "公安分局", "person", [
        ("sex", "性别", "Sex", False), ("ethnicity", "民族", "Ethnicity", False),
        ("birth_date", "出生", "Born", True), ("address", "住址", "Address", True)], 20),
    "household_register": ("002", "居民户口簿", "Household register", "公安分局", "person", [
        ("household_no", "户号", "Household no.", False), ("household_kind", "户别", "Household kind", False),
        ("address", "住址", "Address", True), ("relation", "与户主关系", "Relation to head", False)], None),
    "marriage_certificate": ("001", "结婚证", "Marriage certificate", "民政局", "person", [
        ("spouse_name", "配偶姓名", "Spouse", True), ("spouse_id_number", "配偶身份证号", "Spouse's ID number", True),
        ("registered_on", "登记日期", "Registered on", False)], None),
    "birth_certificate": ("001", "出生医学证明", "Medical birth certificate", "卫健委", "person", [
        ("sex", "性别", "Sex", False), ("birth_date", "出生日期", "Born", True),
        ("birth_place", "出生地点", "Place of birth", False), ("mother_name", "母亲姓名", "Mother", True),
        ("father_name", "父亲姓名", "Father", True)], None),
    "medical_insurance": ("001", "医保参保凭证", "Medical insurance certificate", "医保局", "person", [
        ("scheme", "参保险种", "Scheme", False), ("insured_since", "参保日期", "Insured since", False)], None),
    "social_security_card": ("001", "社会保障卡", "Social security card", "人社局", "person", [
        ("card_no", "卡号", "Card no.", True), ("issued_by", "发卡地", "Issued in", False)], 10),
    "business_licence": ("001", "营业执照", "Business licence", "市场监管局", "entity", [
        ("entity_type", "类型", "Type", False), ("legal_rep", "法定代表人", "Legal representative", True),
        ("registered_capital", "注册资本", "Registered capital", False),
        ("established_on", "成立日期", "Established", False), ("address", "住所", "Address", False),
        ("scope", "经营范围", "Business scope", False)], None),
    "food_business_licence": ("002", "食品经营许可证", "Food business licence", "市场监管局", "entity", [
        ("licence_no", "许可证编号", "Licence no.", False), ("operator_kind", "主体业态", "Kind of operation", False),
        ("premises", "经营场所", "Premises", False), ("items", "经营项目", "Items", False)], 5),
    "public_health_licence": ("002", "公共场所卫生许可证", "Public-venue hygiene licence", "卫健委", "entity", [
        ("venue", "场所名称", "Venue", False), ("premises", "地址", "Premises", False),
        ("items", "许可项目", "Items", False)], 4),
    "social_org_certificate": ("002", "社会团体法人登记证书", "Social organisation registration certificate", "民政局",
                               "entity", [("legal_rep", "法定代表人", "Legal representative", True),
                                          ("address", "住所", "Address", False), ("scope", "业务范围", "Scope", False)], 5),
    "retirement_certificate": ("002", "退休证", "Retirement certificate", "人社局", "person", [
        ("retired_on", "退休日期", "Retired on", False), ("employer", "原工作单位", "Former employer", False)], None),
}
