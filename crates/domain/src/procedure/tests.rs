use chrono::NaiveDate;
use serde_json::{Map, Value as Json};

use super::lines::LineIndex;
use super::validate::*;
use super::*;
use proptest::prelude::*;
use serde_json::json;

/// The birth registration procedure, as in docs/procedure-format.md.
const EXAMPLE: &str = r#"code: "1.001193"
version: 1
name:
  vi: Đăng ký khai sinh
  en: Birth registration
sector: civil-status
sector_name:
  vi: Hộ tịch
  en: Civil status
level: commune
agency_kind: commune_peoples_committee
online: full
processing_time: { working_days: 1 }
fees:
  - id: registration
    name:
      vi: Lệ phí đăng ký khai sinh
      en: Birth registration fee
    amount: 0
    note:
      vi: Miễn lệ phí khi đăng ký đúng hạn (trong 60 ngày kể từ ngày sinh)
      en: Free when registered within 60 days of the birth
  - id: extract-copy
    name:
      vi: Phí cấp bản sao trích lục khai sinh
      en: Certified copy of the birth extract
    amount: 8000
documents:
  - id: declaration
    name:
      vi: Tờ khai đăng ký khai sinh
      en: Birth registration form
    required: true
    accept: [pdf, docx, jpg, png]
  - id: birth-certificate
    name:
      vi: Giấy chứng sinh
      en: Medical birth certificate
    required: true
    accept: [pdf, jpg, jpeg, png]
  - id: authorisation
    name:
      vi: Văn bản ủy quyền (nếu nộp thay)
      en: Power of attorney (when filing for someone else)
    required: false
    accept: [pdf, jpg, png]
    max_count: 2
fields:
  - id: child_full_name
    label:
      vi: Họ, chữ đệm và tên của trẻ
      en: Child's full name
    type: text
    required: true
    min_length: 2
    max_length: 100
    pattern: '[\p{L} ]+'
  - id: child_birth_date
    label: {vi: Ngày sinh, en: Date of birth}
    type: date
    required: true
    max_date: today
  - id: child_sex
    label: {vi: Giới tính, en: Sex}
    type: choice
    required: true
    options:
      - value: male
        label: {vi: Nam, en: Male}
      - value: female
        label: {vi: Nữ, en: Female}
  - id: place_of_birth
    label: {vi: Nơi sinh, en: Place of birth}
    type: address
    required: true
  - id: mother_full_name
    label: {vi: Họ tên người mẹ, en: Mother's full name}
    type: text
    required: true
    max_length: 100
  - id: mother_national_id
    label: {vi: Số định danh cá nhân của người mẹ, en: Mother's personal ID number}
    type: national-id
    required: true
  - id: father_national_id
    label: {vi: Số định danh cá nhân của người cha, en: Father's personal ID number}
    type: national-id
  - id: applicant_phone
    label: {vi: Số điện thoại người đi đăng ký, en: Applicant's phone}
    type: phone
    required: true
  - id: applicant_email
    label: {vi: Thư điện tử, en: E-mail}
    type: email
  - id: extract_copies
    label: {vi: Số bản sao trích lục cần cấp, en: Certified copies wanted}
    type: number
    min: 0
    max: 10
    help:
      vi: 8.000 đồng một bản
      en: 8,000 VND per copy
workflow:
  - id: receive
    name: {vi: Tiếp nhận hồ sơ, en: Reception}
    role: officer
    share: 20
  - id: examine
    name: {vi: Thẩm định và ghi sổ hộ tịch, en: Examination and entry in the register}
    role: specialist
    share: 50
  - id: approve
    name: {vi: Ký Giấy khai sinh, en: Signature of the birth certificate}
    role: leader
    share: 30
result:
  kind: certificate
  name:
    vi: Giấy khai sinh (bản chính)
    en: Birth certificate (original)
legal_basis:
  - Luật Hộ tịch số 60/2014/QH13
  - Nghị định số 123/2015/NĐ-CP
  - Thông tư số 04/2020/TT-BTP
  - Thông tư số 281/2016/TT-BTC
"#;

fn example() -> Procedure {
    match parse_procedure("example.yaml", EXAMPLE) {
        Ok(p) => p,
        Err(issues) => panic!("example must be clean: {issues:#?}"),
    }
}

/// (line, message prefix) of each issue.
fn lines(issues: &[LintIssue]) -> Vec<(usize, String)> {
    issues
        .iter()
        .map(|i| {
            let head = i.message.split(':').next().unwrap_or_default();
            (i.line, head.to_string())
        })
        .collect()
}

/// 1-based number of the first line starting with `start`.
fn line_of(text: &str, start: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(start))
        .map(|n| n + 1)
        .expect("line present")
}

fn has(issues: &[LintIssue], line: usize, needle: &str) -> bool {
    issues
        .iter()
        .any(|i| i.line == line && i.message.contains(needle))
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

#[test]
fn example_parses_and_round_trips() {
    let p = example();
    assert_eq!(p.code, "1.001193");
    assert_eq!(p.processing_time, ProcessingTime::WorkingDays(1));
    assert_eq!(p.documents[0].max_count, 1);
    assert_eq!(p.documents[2].max_count, 2);
    assert_eq!(p.fields[5].kind, FieldType::NationalId);
    assert_eq!(p.name.get("en"), "Birth registration");

    let yaml = serde_yaml_ng::to_string(&p).expect("serialise");
    assert!(
        yaml.contains("processing_time:\n  working_days: 1\n"),
        "{yaml}"
    );
    let again = parse_procedure("again.yaml", &yaml).expect("re-parses cleanly");
    assert_eq!(again, p);

    let json = serde_json::to_string(&p).expect("json");
    assert!(json.contains(r#""processing_time":{"working_days":1}"#));
    let from_json: Procedure = serde_json::from_str(&json).expect("from json");
    assert_eq!(from_json, p);
}

#[test]
fn processing_time_forms() {
    let read = |yaml: &str| serde_yaml_ng::from_str::<BTreeMap<String, ProcessingTime>>(yaml);
    for yaml in [
        "t: {working_days: 5}\n",
        "t:\n  working_days: 5\n",
        "t: !working_days 5\n",
    ] {
        let t = read(yaml).map(|m| m.get("t").copied());
        assert_eq!(
            t.ok().flatten(),
            Some(ProcessingTime::WorkingDays(5)),
            "{yaml}"
        );
    }
    assert_eq!(
        read("t: {working_hours: 4}\n")
            .ok()
            .and_then(|m| m.get("t").copied()),
        Some(ProcessingTime::WorkingHours(4))
    );
    for bad in [
        "t: {working_dayz: 5}\n",
        "t: {}\n",
        "t: {working_days: 5, working_hours: 2}\n",
        "t: {working_days: -1}\n",
        "t: working_days\n",
        "t: 5\n",
    ] {
        assert!(read(bad).is_err(), "{bad}");
    }
    let json: ProcessingTime = serde_json::from_str(r#"{"working_hours":8}"#).expect("json");
    assert_eq!(json, ProcessingTime::WorkingHours(8));
    assert_eq!(
        serde_json::to_string(&ProcessingTime::WorkingDays(3))
            .ok()
            .as_deref(),
        Some(r#"{"working_days":3}"#)
    );
}

#[test]
fn helpers() {
    let p = example();
    assert_eq!(p.total_fee(), 8000);
    assert_eq!(
        p.document("birth-certificate").map(|d| d.required),
        Some(true)
    );
    assert!(p.document("nope").is_none());
    assert_eq!(
        p.field("child_sex").map(|f| f.kind),
        Some(FieldType::Choice)
    );
    assert_eq!(p.processing_time.working_minutes(8), 480);
    let issue = LintIssue {
        file: "a.yaml".into(),
        line: 3,
        column: 7,
        message: "code: bad".into(),
    };
    assert_eq!(issue.to_string(), "a.yaml:3:7: code: bad");
}

const SEMANTIC: &str = r#"code: "1.1193"
version: 0
name:
  vi: Đăng ký khai sinh
  en: ""
sector: Civil_Status
sector_name: {vi: Hộ tịch, en: Civil status}
level: province
agency_kind: commune_peoples_committee
online: full
processing_time: !working_hours 0
fees:
  - id: fee
    name: {vi: Lệ phí, en: Fee}
    amount: 0
  - id: fee
    name: {vi: Phí, en: Fee}
    amount: 8000
documents:
  - id: Form
    name: {vi: Tờ khai, en: Form}
    required: true
    accept: [pdf, exe]
    max_count: 21
  - id: scan
    name: {vi: Bản chụp, en: Scan}
    required: false
    accept: []
fields:
  - id: name
    label: {vi: Họ tên, en: Name}
    type: text
    min_length: 10
    max_length: 5
    pattern: "([a-z]"
  - id: age
    label: {vi: Tuổi, en: Age}
    type: number
    min: 10
    max: 1
    pattern: "[0-9]+"
  - id: sex
    label: {vi: Giới tính, en: Sex}
    type: choice
  - id: born
    label: {vi: Ngày sinh, en: Born}
    type: date
    min_date: yesterday
    max_date: 2024-13-01
    options:
      - {value: a, label: {vi: A, en: A}}
  - id: kind
    label: {vi: Loại, en: Kind}
    type: choice
    options:
      - value: a
        label: {vi: A, en: A}
      - value: a
        label: {vi: B, en: B}
workflow:
  - id: check
    name: {vi: Thẩm định, en: Check}
    role: specialist
    share: 0
  - id: check
    name: {vi: Thẩm định, en: Check}
    role: officer
    share: 50
result:
  kind: certificate
  name: {vi: "", en: Certificate}
legal_basis: []
"#;

#[test]
fn lint_reports_every_semantic_problem_at_its_line() {
    let issues = lint_procedure("bad.yaml", SEMANTIC);
    let expected: Vec<(usize, &str)> = vec![
        (1, "code"),
        (2, "version"),
        (5, "name.en"),
        (6, "sector"),
        (9, "agency_kind"),
        (11, "processing_time"),
        (16, "fees[1].id"),
        (20, "documents[0].id"),
        (23, "documents[0].accept[1]"),
        (24, "documents[0].max_count"),
        (28, "documents[1].accept"),
        (33, "fields[0].min_length"),
        (35, "fields[0].pattern"),
        (39, "fields[1].min"),
        (41, "fields[1].pattern"),
        (42, "fields[2].options"),
        (48, "fields[3].min_date"),
        (49, "fields[3].max_date"),
        (50, "fields[3].options"),
        (58, "fields[4].options[1].value"),
        (60, "workflow"),
        (63, "workflow[0].role"),
        (64, "workflow[0].share"),
        (65, "workflow[1].id"),
        (67, "workflow[1].role"),
        (71, "result.name.vi"),
        (72, "legal_basis"),
    ];
    let got = lines(&issues);
    let want: Vec<(usize, String)> = expected
        .iter()
        .map(|(l, p)| (*l, (*p).to_string()))
        .collect();
    assert_eq!(got, want, "{issues:#?}");

    // Spot-check columns and wording.
    let exe = issues
        .iter()
        .find(|i| i.message.starts_with("documents[0].accept[1]"))
        .expect("exe issue");
    assert_eq!(exe.column, 19);
    assert!(exe.message.contains("`exe`"));
    let vi = issues
        .iter()
        .find(|i| i.message.starts_with("result.name.vi"))
        .expect("result name");
    assert_eq!(vi.column, 10);
    assert!(has(&issues, 60, "add up to 50"));
    assert!(has(&issues, 35, "unclosed group"));
    assert!(has(
        &issues,
        9,
        "commune-level agency but `level` is province"
    ));
    assert!(has(&issues, 16, "duplicate id `fee` (also fees[0])"));
    assert!(issues.iter().all(|i| i.file == "bad.yaml"));
    assert!(parse_procedure("bad.yaml", SEMANTIC).is_err());
}

const TYPES: &str = r#"code: "1.001193x"
version: one
name: {vi: A, en: B}
sector: civil-status
sector_name: {vi: A, en: B}
level: district
agency_kind: commune_peoples_committee
online: full
processing_time:
  working_dayz: 5
colour: blue
fields:
  - id: a
    label: {vi: A, en: B}
    type: txt
  - id: B
    label: {vi: A, en: B}
    type: text
    patern: x
  - id: c
    label: {vi: A, en: B}
    type: number
workflow:
  - id: receive
    name: {vi: A, en: B}
    role: officer
    share: 100
result: {kind: certificate, name: {vi: A, en: B}}
legal_basis: [Luật Hộ tịch 2014]
"#;

#[test]
fn lint_reports_every_type_error_and_still_checks_the_rest() {
    let issues = lint_procedure("types.yaml", TYPES);
    let got = lines(&issues);
    let want: Vec<(usize, String)> = [
        (1, "code"),
        (2, "version"),
        (6, "level"),
        (10, "processing_time"),
        (11, "colour"),
        (15, "fields[0].type"),
        (19, "fields[1]"),
        (26, "workflow[0].role"),
    ]
    .iter()
    .map(|(l, p)| (*l, (*p).to_string()))
    .collect();
    assert_eq!(got, want, "{issues:#?}");
    assert!(has(&issues, 2, "invalid type"));
    assert!(has(&issues, 6, "unknown variant `district`"));
    assert!(has(&issues, 10, "unknown variant `working_dayz`"));
    assert!(has(&issues, 11, "unknown key"));
    assert!(has(&issues, 15, "unknown variant `txt`"));
    assert!(has(&issues, 19, "unknown field `patern`"));
    assert!(has(&issues, 26, "the last step is the approval"));
    let patern = issues.iter().find(|i| i.line == 19).expect("patern issue");
    assert_eq!(patern.column, 5);
    assert!(!patern.message.contains(" at line "));
}

#[test]
fn lint_reports_syntax_errors_duplicates_and_missing_keys() {
    let syntax = lint_procedure("s.yaml", "code: \"1.001193\"\nname:\n  vi: a\n   en: b\n");
    assert_eq!(syntax.len(), 1, "{syntax:#?}");
    assert_eq!(syntax[0].line, 4);
    assert!(syntax[0].column > 0);

    let dup = lint_procedure("d.yaml", "# head\ncode: x\nversion: 1\ncode: y\n");
    assert_eq!(dup.len(), 1, "{dup:#?}");
    assert_eq!((dup[0].line, dup[0].column), (4, 1));
    assert!(dup[0].message.contains("first written on line 2"));

    let nested = EXAMPLE.replace("    amount: 8000\n", "    amount: 8000\n    amount: 9000\n");
    let dup = lint_procedure("d.yaml", &nested);
    assert_eq!(dup.len(), 1, "{dup:#?}");
    assert_eq!(dup[0].line, line_of(&nested, "    amount: 9000"));
    assert!(dup[0].message.starts_with("fees[1].amount: duplicate key"));

    let two = format!("{EXAMPLE}---\ncode: x\n");
    let issues = lint_procedure("t.yaml", &two);
    assert_eq!(issues.len(), 1);
    assert!(issues[0].message.contains("one YAML document"));

    let empty = lint_procedure("e.yaml", "# nothing yet\n");
    assert_eq!(empty.len(), 1);
    assert!(empty[0].message.contains("empty"));

    let list = lint_procedure("l.yaml", "- a\n- b\n");
    assert_eq!(list.len(), 1);

    let missing = lint_procedure("m.yaml", "\n# c\ncode: \"1.001193\"\nversion: 2\n");
    assert!(
        has(&missing, 3, "missing required key `workflow`"),
        "{missing:#?}"
    );
    assert!(has(&missing, 3, "missing required key `result`"));
    assert!(!missing.iter().any(|i| i.message.contains("`code`")));
}

#[test]
fn aliases_across_keys_do_not_confuse_the_per_key_analysis() {
    // An anchor in `name`, an alias in `sector_name`, and a type error:
    // the alias is not reported as an error, the type error is.
    let yaml = EXAMPLE
        .replace(
            "name:\n  vi: Đăng ký khai sinh",
            "name: &n\n  vi: Đăng ký khai sinh",
        )
        .replace(
            "sector_name:\n  vi: Hộ tịch\n  en: Civil status\n",
            "sector_name: *n\n",
        );
    assert!(lint_procedure("a.yaml", &yaml).is_empty());
    let bad = yaml.replace("version: 1", "version: one");
    let issues = lint_procedure("a.yaml", &bad);
    assert_eq!(
        lines(&issues),
        vec![(2, "version".to_string())],
        "{issues:#?}"
    );
}

#[test]
fn block_items_at_the_key_indentation_and_flow_lists() {
    // Items written at the indentation of their key, and a flow list of
    // workflow steps: both are read and located.
    let yaml = EXAMPLE
        .replace("  - Luật Hộ tịch", "- Luật Hộ tịch")
        .replace("  - Nghị định", "- Nghị định")
        .replace("  - Thông tư", "- Thông tư");
    assert!(lint_procedure("a.yaml", &yaml).is_empty());
    let bad = yaml.replace("- Nghị định số 123/2015/NĐ-CP", "- ''");
    let issues = lint_procedure("a.yaml", &bad);
    assert_eq!(
        lines(&issues),
        vec![(line_of(&bad, "- ''"), "legal_basis[1]".to_string())]
    );

    let flow = EXAMPLE.replace(
            "  - id: extract-copy\n    name:\n      vi: Phí cấp bản sao trích lục khai sinh\n      en: Certified copy of the birth extract\n    amount: 8000\n",
            "  - {id: extract-copy, name: {vi: Phí, en: Fee}, amount: 8000, colour: red}\n",
        );
    let issues = lint_procedure("f.yaml", &flow);
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert_eq!(issues[0].line, line_of(&flow, "  - {id: extract-copy"));
    assert!(
        issues[0]
            .message
            .starts_with("fees[1]: unknown field `colour`")
    );
}

#[test]
fn line_index_understands_block_yaml() {
    let yaml = "# comment\n\
                    code: \"1\"\n\
                    name: &n\n  \
                      vi: A\n  \
                      en: >\n    \
                        folded\n    \
                        text: not a key\n\
                    \"quoted key\": v\n\
                    list:\n\
                    - a\n\
                    - b: 1\n  \
                      c: 2\n\
                    -\n  \
                      d: 3\n\
                    nested:\n  \
                      - - x\n    \
                        - y\n\
                    flow: [a, \"b, c\", {k: v}]\n\
                    map: {vi: A, en: B}\n\
                    after: |\n  \
                      x: 1\n\
                    last: 1\n";
    let index = LineIndex::build(yaml);
    let at = |p: &str| index.at.get(p).copied();
    assert_eq!(at("code"), Some((2, 1)));
    assert_eq!(at("name.vi"), Some((4, 3)));
    assert_eq!(at("name.en"), Some((5, 3)));
    assert_eq!(at("name.text"), None);
    assert_eq!(at("text"), None);
    assert_eq!(at("quoted key"), Some((8, 1)));
    assert_eq!(at("list[0]"), Some((10, 1)));
    assert_eq!(at("list[1]"), Some((11, 1)));
    assert_eq!(at("list[1].b"), Some((11, 3)));
    assert_eq!(at("list[1].c"), Some((12, 3)));
    assert_eq!(at("list[2]"), Some((13, 1)));
    assert_eq!(at("list[2].d"), Some((14, 3)));
    assert_eq!(at("nested[0]"), Some((16, 3)));
    assert_eq!(at("nested[0][0]"), Some((16, 5)));
    assert_eq!(at("nested[0][1]"), Some((17, 5)));
    assert_eq!(at("flow[0]"), Some((18, 8)));
    assert_eq!(at("flow[1]"), Some((18, 11)));
    assert_eq!(at("flow[2]"), Some((18, 19)));
    assert_eq!(at("map.vi"), Some((19, 7)));
    assert_eq!(at("map.en"), Some((19, 14)));
    assert_eq!(at("after"), Some((20, 1)));
    assert_eq!(at("x"), None);
    assert_eq!(at("last"), Some((22, 1)));
    assert_eq!(index.locate("list[1].zzz"), (11, 1));
    assert_eq!(index.locate("fields[3].pattern"), (2, 0));
    assert!(index.duplicates.is_empty());
}

#[test]
fn lint_set_finds_duplicate_code_and_version() {
    let p = example();
    let mut v2 = p.clone();
    v2.version = 2;
    let set = vec![
        ("a.yaml".to_string(), p.clone()),
        ("b.yaml".to_string(), v2),
        ("c.yaml".to_string(), p),
    ];
    let issues = lint_set(&set);
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].file, "c.yaml");
    assert!(issues[0].message.contains("1.001193 version 1"));
    assert!(issues[0].message.contains("a.yaml"));
    assert!(lint_set(&set[..2]).is_empty());
}

#[test]
fn prefill_is_linted_and_read() {
    let good = format!(
        "{EXAMPLE}prefill:\n  - service: VN/GOV/BCA/POPULATION/citizens\n    path: \"/{{national_id}}\"\n    name: {{ vi: CSDL dân cư, en: Population database }}\n    fields:\n      child_full_name: full_name\n"
    );
    let p = parse_procedure("good.yaml", &good).expect("clean");
    assert_eq!(p.prefill.len(), 1);
    let nid = NationalId::parse("001090012345").expect("nid");
    assert_eq!(p.prefill[0].path_for(&nid), "/001090012345");
    assert_eq!(
        p.prefill[0]
            .fields
            .get("child_full_name")
            .map(String::as_str),
        Some("full_name")
    );

    let start = EXAMPLE.lines().count() + 1;
    let bad = format!(
        "{EXAMPLE}prefill:\n  - service: VN/GOV\n    path: \"people/{{id}}\"\n    name: {{ vi: CSDL, en: DB }}\n    fields:\n      no_such_field: full_name\n      child_full_name: \" \"\n  - service: VN/GOV/BCA/POPULATION/citizens\n    path: /x\n    name: {{ vi: \"\", en: DB }}\n    fields:\n      child_full_name: name\n"
    );
    let issues = lint_procedure("bad.yaml", &bad);
    let found: Vec<(usize, String)> = issues
        .iter()
        .map(|i| (i.line - start, i.message.clone()))
        .collect();
    let has =
        |line: usize, needle: &str| found.iter().any(|(l, m)| *l == line && m.contains(needle));
    assert!(has(1, "prefill[0].service"), "{found:#?}");
    assert!(has(2, "prefill[0].path"), "{found:#?}");
    assert!(has(5, "`no_such_field` is not a field"), "{found:#?}");
    assert!(has(6, "name the key"), "{found:#?}");
    assert!(has(9, "prefill[1].name.vi"), "{found:#?}");
    assert!(has(11, "already filled by prefill[0]"), "{found:#?}");
    assert_eq!(issues.len(), 6, "{found:#?}");
}

fn values(v: serde_json::Value) -> Map<String, Json> {
    match v {
        Json::Object(map) => map,
        _ => panic!("not an object"),
    }
}

fn codes(errors: &[FieldError]) -> Vec<(&str, &str)> {
    errors.iter().map(|e| (e.field.as_str(), e.code)).collect()
}

#[test]
fn validation_accepts_and_normalises_good_input() {
    let p = example();
    let input = values(json!({
        "child_full_name": "  Nguye\u{302}\u{303}n Văn An ",
        "child_birth_date": "5/3/2025",
        "child_sex": "male",
        "place_of_birth": "Bệnh viện Phụ sản Hà Nội",
        "mother_full_name": "Trần Thị Bình",
        "mother_national_id": "001 190 012345",
        "father_national_id": "  ",
        "applicant_phone": "+84 912 345 678",
        "applicant_email": null,
        "extract_copies": "2"
    }));
    let out = p
        .validate_fields(&input, date(2025, 3, 10))
        .expect("valid input");
    assert_eq!(
        Json::Object(out),
        json!({
            "child_full_name": "Nguyễn Văn An",
            "child_birth_date": "2025-03-05",
            "child_sex": "male",
            "place_of_birth": "Bệnh viện Phụ sản Hà Nội",
            "mother_full_name": "Trần Thị Bình",
            "mother_national_id": "001190012345",
            "applicant_phone": "0912345678",
            "extract_copies": 2
        })
    );
    let numbers = values(json!({
        "child_full_name": "An", "child_birth_date": "2025-03-10", "child_sex": "female",
        "place_of_birth": "Hà Nội", "mother_full_name": "B",
        "mother_national_id": "001190012345", "applicant_phone": "0912345678",
        "applicant_email": "me@example.vn", "extract_copies": 2.5
    }));
    let out = p
        .validate_fields(&numbers, date(2025, 3, 10))
        .expect("valid");
    assert_eq!(out.get("extract_copies"), Some(&json!(2.5)));
    assert_eq!(out.get("applicant_email"), Some(&json!("me@example.vn")));
}

#[test]
fn validation_reports_every_bad_field_with_its_code() {
    let p = example();
    let input = values(json!({
        "child_full_name": "A",
        "child_birth_date": "2025-03-11",
        "child_sex": "x",
        "place_of_birth": "HN",
        "mother_national_id": "123",
        "father_national_id": 12,
        "applicant_phone": "12345",
        "applicant_email": "a@b",
        "extract_copies": "11",
        "nickname": "x"
    }));
    let errors = p
        .validate_fields(&input, date(2025, 3, 10))
        .expect_err("invalid input");
    assert_eq!(
        codes(&errors),
        vec![
            ("nickname", "unknown-field"),
            ("child_full_name", "too-short"),
            ("child_birth_date", "date-too-late"),
            ("child_sex", "invalid-choice"),
            ("place_of_birth", "too-short"),
            ("mother_full_name", "required"),
            ("mother_national_id", "invalid-national-id"),
            ("father_national_id", "not-text"),
            ("applicant_phone", "invalid-phone"),
            ("applicant_email", "invalid-email"),
            ("extract_copies", "above-max"),
        ]
    );
    let params = |field: &str| {
        errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| Json::Object(e.params.clone()))
    };
    assert_eq!(params("child_full_name"), Some(json!({"min": 2})));
    assert_eq!(
        params("child_birth_date"),
        Some(json!({"max": "2025-03-10"}))
    );
    assert_eq!(params("place_of_birth"), Some(json!({"min": 5})));
    assert_eq!(params("extract_copies"), Some(json!({"max": 10})));
    assert_eq!(
        params("child_sex"),
        Some(json!({"allowed": ["male", "female"]}))
    );
    let serialised = serde_json::to_value(&errors[1]).expect("json");
    assert_eq!(
        serialised,
        json!({"field": "child_full_name", "code": "too-short", "params": {"min": 2}})
    );
}

#[test]
fn validation_of_each_kind() {
    let mut p = example();
    p.fields.push(FieldSpec {
        id: "since".into(),
        label: Localized::default(),
        kind: FieldType::Date,
        required: false,
        help: None,
        min_length: None,
        max_length: None,
        min: None,
        max: None,
        pattern: None,
        min_date: Some("2020-01-01".into()),
        max_date: None,
        options: Vec::new(),
    });
    p.fields.push(FieldSpec {
        id: "note".into(),
        kind: FieldType::Text,
        min_date: None,
        ..p.fields[10].clone()
    });
    let base = values(json!({
        "child_full_name": "An", "child_birth_date": "2025-03-10", "child_sex": "female",
        "place_of_birth": "Hà Nội", "mother_full_name": "B",
        "mother_national_id": "001190012345", "applicant_phone": "0912345678"
    }));
    let today = date(2025, 3, 10);
    let one = |field: &str, value: Json| {
        let mut v = base.clone();
        v.insert(field.to_string(), value);
        match p.validate_fields(&v, today) {
            Ok(_) => None,
            Err(e) => {
                assert_eq!(e.len(), 1, "{e:?}");
                Some(e[0].code)
            }
        }
    };
    assert_eq!(one("child_full_name", json!("Nguyễn 2")), Some("pattern"));
    assert_eq!(
        one("child_full_name", json!("A".repeat(101))),
        Some("too-long")
    );
    assert_eq!(one("child_full_name", json!(["An"])), Some("not-text"));
    assert_eq!(one("child_full_name", json!("An\u{0}h")), Some("not-text"));
    assert_eq!(
        one("child_full_name", json!("An\u{1b}[2J")),
        Some("not-text")
    );
    assert_eq!(one("note", json!("x".repeat(500))), None);
    assert_eq!(one("note", json!("x".repeat(501))), Some("too-long"));
    assert_eq!(
        one("place_of_birth", json!("x".repeat(301))),
        Some("too-long")
    );
    for bad in ["abc", "inf", "NaN", "1e3", "1.", "", "1,5"] {
        let expected = if bad.is_empty() {
            None
        } else {
            Some("not-a-number")
        };
        assert_eq!(one("extract_copies", json!(bad)), expected, "{bad}");
    }
    assert_eq!(one("extract_copies", json!(true)), Some("not-a-number"));
    assert_eq!(one("extract_copies", json!("-1")), Some("below-min"));
    assert_eq!(one("extract_copies", json!(" 10 ")), None);
    assert_eq!(
        one("child_birth_date", json!("31/02/2025")),
        Some("invalid-date")
    );
    assert_eq!(
        one("child_birth_date", json!("2025/03/01")),
        Some("invalid-date")
    );
    assert_eq!(
        one("child_birth_date", json!("1/3/25")),
        Some("invalid-date")
    );
    assert_eq!(one("child_birth_date", json!("10/03/2025")), None);
    assert_eq!(one("since", json!("2019-12-31")), Some("date-too-early"));
    assert_eq!(one("since", json!("2020-01-01")), None);
    assert_eq!(one("child_birth_date", json!("")), Some("required"));
    assert_eq!(one("child_birth_date", Json::Null), Some("required"));
    assert_eq!(
        one("applicant_email", json!("a b@c.vn")),
        Some("invalid-email")
    );
    assert_eq!(one("applicant_phone", json!(912345678)), Some("not-text"));
}

#[test]
fn document_validation() {
    let p = example();
    let docs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        p.validate_documents(&docs(&[
            ("declaration", "To khai.PDF"),
            ("birth-certificate", "giay chung sinh.jpeg"),
            ("authorisation", "uy quyen 1.pdf"),
            ("authorisation", "uy quyen 2.pdf"),
        ])),
        Ok(())
    );
    let errors = p
        .validate_documents(&docs(&[
            ("declaration", "a.exe"),
            ("declaration", "noext"),
            ("authorisation", "1.pdf"),
            ("authorisation", "2.pdf"),
            ("authorisation", "3.pdf"),
            ("photo", "x.jpg"),
            ("photo", "y.jpg"),
        ]))
        .expect_err("bad documents");
    assert_eq!(
        codes(&errors),
        vec![
            ("declaration", "document-type"),
            ("declaration", "document-type"),
            ("photo", "document-unknown"),
            ("declaration", "document-too-many"),
            ("birth-certificate", "document-required"),
            ("authorisation", "document-too-many"),
        ]
    );
    assert_eq!(
        Json::Object(errors[0].params.clone()),
        json!({"file": "a.exe", "accept": "pdf, docx, jpg, png"})
    );
    assert_eq!(
        Json::Object(errors[5].params.clone()),
        json!({"max": 2, "count": 3})
    );
}

/// The complete example of docs/procedure-format.md lints clean.
#[test]
fn documented_example_lints_clean() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/procedure-format.md"
    );
    let doc = std::fs::read_to_string(path).expect("docs/procedure-format.md");
    let start = doc.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let len = doc[start..].find("```").expect("end of the yaml block");
    let yaml = &doc[start..start + len];
    let p = match parse_procedure("procedure-format.md", yaml) {
        Ok(p) => p,
        Err(issues) => panic!("{issues:#?}"),
    };
    assert_eq!(p, example());
}

#[test]
fn shipped_procedures_lint_clean() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../procedures");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("procedures/ directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut problems = Vec::new();
    let mut set = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(path).expect("readable");
        let issues = lint_procedure(&name, &text);
        problems.extend(issues.iter().map(ToString::to_string));
        if let Ok(p) = parse_procedure(&name, &text) {
            set.push((name, p));
        }
    }
    problems.extend(lint_set(&set).iter().map(ToString::to_string));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        files.len() >= 20,
        "expected at least 20 procedures, found {}",
        files.len()
    );
}

proptest! {
    #[test]
    fn lint_never_panics_and_lines_are_in_the_file(
        s in "[a-z_:\\- \\[\\]{},\"'#|>!&*\n]{0,300}"
    ) {
        let issues = lint_procedure("p.yaml", &s);
        let lines = s.lines().count().max(1);
        for i in &issues {
            prop_assert!(i.line >= 1 && i.line <= lines + 1, "{i}");
        }
    }

    #[test]
    fn a_damaged_example_is_reported_not_panicked_on(
        drop in 0usize..140, dup in 0usize..140
    ) {
        let lines: Vec<&str> = EXAMPLE.lines().collect();
        let mut damaged: Vec<&str> = Vec::new();
        for (n, l) in lines.iter().enumerate() {
            if n == dup { damaged.push(l); }
            if n != drop { damaged.push(l); }
        }
        let text = damaged.join("\n");
        let issues = lint_procedure("p.yaml", &text);
        for i in &issues {
            prop_assert!(i.line >= 1 && i.line <= damaged.len() + 1, "{i}");
        }
        prop_assert_eq!(parse_procedure("p.yaml", &text).is_ok(), issues.is_empty());
    }
}
