//! `strata docs events` (hidden): docs/EVENTS.md, every event type's schema, generated from the `.proto`
//! files (messages, fields with their types and comments, the comments before them). A unit test fails
//! while docs/EVENTS.md differs from what the schemas give, and says how to regenerate it.
//!
//! Which messages are event types is asked of the codec (`strata_proto::codec::event_json` knows every
//! `<category>.<Message>.v1`), so a new schema file or event is documented without code here.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

/// Where the schemas are in this source tree.
pub const PROTO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proto/schemas/strata");
/// Where the generated file goes.
pub const EVENTS_MD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/EVENTS.md");
/// How to regenerate it.
pub const REGENERATE: &str = "cargo run -- docs events --output docs/EVENTS.md";

#[derive(clap::Subcommand)]
pub enum DocsCommand {
    /// Render every event type's schema from the .proto files as markdown (docs/EVENTS.md).
    Events {
        /// The schema directory [default: this source tree's proto/schemas/strata].
        #[arg(long, value_name = "DIR")]
        proto_dir: Option<PathBuf>,
        /// Write here instead of printing.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Compare with --output (default docs/EVENTS.md) and exit 1 when it differs.
        #[arg(long)]
        check: bool,
    },
}

pub fn run(cmd: DocsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DocsCommand::Events {
            proto_dir,
            output,
            check,
        } => {
            let dir = proto_dir.unwrap_or_else(|| PathBuf::from(PROTO_DIR));
            let text = events_markdown(&dir)?;
            if check {
                let path = output.unwrap_or_else(|| PathBuf::from(EVENTS_MD));
                let stored = std::fs::read_to_string(&path).unwrap_or_default();
                if stored == text {
                    println!("{} is up to date", path.display());
                    return Ok(ExitCode::SUCCESS);
                }
                eprintln!(
                    "{} differs from the schemas; regenerate it with `{REGENERATE}`",
                    path.display()
                );
                return Ok(ExitCode::FAILURE);
            }
            match output {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A field of a message (or a value of an enum: `ty` empty).
#[derive(Debug, Default)]
struct Field {
    label: String,
    ty: String,
    name: String,
    number: String,
    doc: Vec<String>,
    oneof: Option<String>,
}

#[derive(Debug)]
enum Item {
    /// A comment block that belongs to no message (a section's introduction).
    Note(Vec<String>),
    Message {
        name: String,
        doc: Vec<String>,
        fields: Vec<Field>,
    },
    Enum {
        name: String,
        doc: Vec<String>,
        values: Vec<Field>,
    },
}

#[derive(Debug)]
struct ProtoFile {
    file: String,
    package: String,
    intro: Vec<String>,
    items: Vec<Item>,
}

impl ProtoFile {
    /// `identity` of `strata.identity.v1`.
    fn category(&self) -> &str {
        let parts: Vec<&str> = self.package.split('.').collect();
        match parts.as_slice() {
            [.., c, v] if v.starts_with('v') => c,
            [.., c] => c,
            [] => "",
        }
    }
}

/// An open block while parsing.
enum Frame {
    Message {
        name: String,
        doc: Vec<String>,
        fields: Vec<Field>,
    },
    Enum {
        name: String,
        doc: Vec<String>,
        values: Vec<Field>,
    },
    Oneof(String),
}

fn comment_text(line: &str) -> Option<String> {
    line.trim()
        .strip_prefix("//")
        .map(|c| c.strip_prefix(' ').unwrap_or(c).trim_end().to_string())
}

/// `stmt // comment` split (a field's trailing comment).
fn split_comment(line: &str) -> (&str, Option<String>) {
    match line.find("//") {
        Some(i) => (&line[..i], comment_text(&line[i..])),
        None => (line, None),
    }
}

fn parse_field(stmt: &str, file: &str, line_no: usize) -> anyhow::Result<Field> {
    let stmt = stmt.trim().trim_end_matches(';').trim();
    // Options (`[deprecated = true]`) are not documented.
    let stmt = match stmt.find('[') {
        Some(i) => stmt[..i].trim(),
        None => stmt,
    };
    let (left, number) = stmt
        .rsplit_once('=')
        .with_context(|| format!("{file}:{line_no}: cannot read the field {stmt:?}"))?;
    let left = left.trim();
    let (ty, name) = left
        .rsplit_once(char::is_whitespace)
        .map(|(t, n)| (t.trim(), n.trim()))
        .unwrap_or(("", left));
    let (label, ty) = match ty.split_once(' ') {
        Some((l @ ("repeated" | "optional" | "required"), t)) => (l.to_string(), t.trim()),
        _ => (String::new(), ty),
    };
    Ok(Field {
        label,
        ty: ty.to_string(),
        name: name.to_string(),
        number: number.trim().to_string(),
        ..Field::default()
    })
}

fn parse(file: &str, text: &str) -> anyhow::Result<ProtoFile> {
    let mut out = ProtoFile {
        file: file.to_string(),
        package: String::new(),
        intro: Vec::new(),
        items: Vec::new(),
    };
    let mut pending: Vec<String> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut seen_syntax = false;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            if stack.is_empty() && !pending.is_empty() {
                let block = std::mem::take(&mut pending);
                if seen_syntax {
                    out.items.push(Item::Note(block));
                } else {
                    out.intro.extend(block);
                }
            }
            continue;
        }
        if let Some(c) = comment_text(line) {
            pending.push(c);
            continue;
        }
        let (stmt, trailing) = split_comment(line);
        let stmt = stmt.trim();
        if stack.is_empty() {
            if stmt.starts_with("syntax") {
                out.intro.append(&mut pending);
                seen_syntax = true;
                continue;
            }
            if let Some(p) = stmt.strip_prefix("package ") {
                out.package = p.trim().trim_end_matches(';').trim().to_string();
                if !pending.is_empty() {
                    out.items.push(Item::Note(std::mem::take(&mut pending)));
                }
                continue;
            }
            if stmt.starts_with("import ") || stmt.starts_with("option ") {
                pending.clear();
                continue;
            }
        }
        let qualified = |stack: &[Frame], name: &str| -> String {
            let mut parts: Vec<&str> = stack
                .iter()
                .filter_map(|f| match f {
                    Frame::Message { name, .. } => Some(name.as_str()),
                    _ => None,
                })
                .collect();
            parts.push(name);
            parts.join(".")
        };
        if let Some(rest) = stmt
            .strip_prefix("message ")
            .or_else(|| stmt.strip_prefix("enum "))
        {
            let is_enum = stmt.starts_with("enum ");
            let name = rest
                .split(|c: char| c == '{' || c.is_whitespace())
                .next()
                .unwrap_or("")
                .to_string();
            if name.is_empty() {
                bail!("{file}:{line_no}: a message or enum without a name");
            }
            let name = qualified(&stack, &name);
            let mut doc = std::mem::take(&mut pending);
            doc.extend(trailing);
            let frame = if is_enum {
                Frame::Enum {
                    name,
                    doc,
                    values: Vec::new(),
                }
            } else {
                Frame::Message {
                    name,
                    doc,
                    fields: Vec::new(),
                }
            };
            stack.push(frame);
            if rest.contains('}') {
                close(&mut stack, &mut out.items);
            }
            continue;
        }
        if let Some(rest) = stmt.strip_prefix("oneof ") {
            pending.clear();
            stack.push(Frame::Oneof(rest.trim_end_matches('{').trim().to_string()));
            continue;
        }
        if stmt == "}" {
            pending.clear();
            if stack.is_empty() {
                bail!("{file}:{line_no}: '}}' closes nothing");
            }
            close(&mut stack, &mut out.items);
            continue;
        }
        if stmt.starts_with("reserved ") || stmt.starts_with("option ") {
            pending.clear();
            continue;
        }
        // A field (of a message or oneof) or an enum value.
        let mut field = parse_field(stmt, file, line_no)?;
        field.doc = std::mem::take(&mut pending);
        field.doc.extend(trailing);
        let oneof = match stack.last() {
            Some(Frame::Oneof(n)) => Some(n.clone()),
            _ => None,
        };
        field.oneof = oneof;
        match stack
            .iter_mut()
            .rev()
            .find(|f| !matches!(f, Frame::Oneof(_)))
        {
            Some(Frame::Message { fields, .. }) => fields.push(field),
            Some(Frame::Enum { values, .. }) => values.push(field),
            _ => bail!("{file}:{line_no}: {stmt:?} is outside any message"),
        }
    }
    if !stack.is_empty() {
        bail!("{file}: a block is not closed");
    }
    if !pending.is_empty() {
        out.items.push(Item::Note(pending));
    }
    if out.package.is_empty() {
        bail!("{file}: no package");
    }
    Ok(out)
}

fn close(stack: &mut Vec<Frame>, items: &mut Vec<Item>) {
    match stack.pop() {
        Some(Frame::Message { name, doc, fields }) => {
            items.push(Item::Message { name, doc, fields })
        }
        Some(Frame::Enum { name, doc, values }) => items.push(Item::Enum { name, doc, values }),
        Some(Frame::Oneof(_)) | None => {}
    }
}

/// Text for markdown: `|` escaped, `<` and `>` outside code spans as entities (so `server-<uuid>` shows).
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut code = false;
    for c in text.chars() {
        match c {
            '`' => {
                code = !code;
                out.push(c);
            }
            '|' => out.push_str("\\|"),
            '<' if !code => out.push_str("&lt;"),
            '>' if !code => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// A comment block as paragraphs: rule lines dropped, `---- title ----` lines as bold titles.
fn prose(lines: &[String]) -> String {
    let mut paragraphs: Vec<String> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for l in lines {
        let t = l.trim();
        if t.starts_with("---") || t.is_empty() {
            let title = t.trim_matches('-').trim();
            if !current.is_empty() {
                paragraphs.push(md(&current.join(" ")));
                current.clear();
            }
            if !title.is_empty() {
                paragraphs.push(format!("**{}**", md(title)));
            }
            continue;
        }
        current.push(t.to_string());
    }
    if !current.is_empty() {
        paragraphs.push(md(&current.join(" ")));
    }
    paragraphs.join("\n\n")
}

fn is_event(category: &str, message: &str) -> bool {
    matches!(
        strata_proto::codec::event_json(&format!("{category}.{message}.v1"), &[]),
        Some(Ok(_))
    )
}

fn fields_table(fields: &[Field], out: &mut String) {
    if fields.is_empty() {
        out.push_str("No fields.\n\n");
        return;
    }
    out.push_str("| # | field | type | meaning |\n|---:|---|---|---|\n");
    for f in fields {
        let ty = match (f.label.as_str(), &f.oneof) {
            ("", None) => format!("`{}`", f.ty),
            (l, None) => format!("`{l} {}`", f.ty),
            (l, Some(o)) => format!(
                "`{}{}` (one of `{o}`)",
                if l.is_empty() { "" } else { l },
                f.ty
            ),
        };
        out.push_str(&format!(
            "| {} | `{}` | {} | {} |\n",
            f.number,
            f.name,
            md(&ty).replace("\\|", "|"),
            md(&f.doc.join(" "))
        ));
    }
    out.push('\n');
}

/// docs/EVENTS.md from the `.proto` files of `dir`.
pub fn events_markdown(dir: &Path) -> anyhow::Result<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "proto") {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            files.push(parse(&name, &text)?);
        }
    }
    if files.is_empty() {
        bail!("no .proto files in {}", dir.display());
    }
    // The envelope first, then the services by name.
    files.sort_by(|a, b| {
        (a.category() != "envelope", a.category()).cmp(&(b.category() != "envelope", b.category()))
    });

    let mut out = String::new();
    out.push_str("# Event types\n\n");
    out.push_str(&format!(
        "<!-- Generated from proto/schemas/strata/*.proto by `strata docs events`; do not edit. Regenerate: `{REGENERATE}`. -->\n\n"
    ));
    out.push_str(
        "Every event Strata records is one protobuf message of `proto/schemas/strata/`, carried as the payload of \
         an `EventEnvelope`. Its type name is `<category>.<Message>.v<N>` (`compute.ServerCreated.v1`): the \
         category is the schema's package (`strata.compute.v1`), which is also the `category` filter of the \
         audit API and the event streams. In the audit API and the event streams the payload is JSON with the \
         field names below (`optional` fields absent: `null`; maps: objects; `bytes`: arrays of numbers); \
         `Accept: application/x-protobuf` streams deliver the stored envelope itself. Password hashes \
         (`password_hash`) never leave: they read `<redacted>` in JSON and in protobuf payloads (whose `hash` \
         then no longer matches their content; the audit API's integrity check reads the log itself).\n\n\
         This file is generated from the schemas (`strata docs events`); `cargo test --bin strata` fails \
         while it differs from them. The rules for changing a schema are in `proto/README.md`.\n\n",
    );
    out.push_str("| category | schema | event types | other messages |\n|---|---|---:|---:|\n");
    for f in &files {
        let (events, others) = f.items.iter().fold((0, 0), |(e, o), item| match item {
            Item::Message { name, .. } if is_event(f.category(), name) => (e + 1, o),
            Item::Message { .. } | Item::Enum { .. } => (e, o + 1),
            Item::Note(_) => (e, o),
        });
        out.push_str(&format!(
            "| {} | `{}` | {events} | {others} |\n",
            f.category(),
            f.file
        ));
    }
    out.push('\n');

    for f in &files {
        let category = f.category();
        if category == "envelope" {
            out.push_str(&format!(
                "## The envelope (`{}`, package `{}`)\n\n",
                f.file, f.package
            ));
        } else {
            out.push_str(&format!(
                "## {category} (`{}`, package `{}`)\n\n",
                f.file, f.package
            ));
        }
        if !f.intro.is_empty() {
            out.push_str(&prose(&f.intro));
            out.push_str("\n\n");
        }
        for item in &f.items {
            match item {
                Item::Note(lines) => {
                    let p = prose(lines);
                    if !p.is_empty() {
                        out.push_str(&p);
                        out.push_str("\n\n");
                    }
                }
                Item::Message { name, doc, fields } => {
                    if is_event(category, name) {
                        out.push_str(&format!("### `{category}.{name}.v1`\n\n"));
                    } else {
                        out.push_str(&format!("### `{name}` (message)\n\n"));
                    }
                    if !doc.is_empty() {
                        out.push_str(&prose(doc));
                        out.push_str("\n\n");
                    }
                    fields_table(fields, &mut out);
                }
                Item::Enum { name, doc, values } => {
                    out.push_str(&format!("### `{name}` (enum)\n\n"));
                    if !doc.is_empty() {
                        out.push_str(&prose(doc));
                        out.push_str("\n\n");
                    }
                    out.push_str("| value | name | meaning |\n|---:|---|---|\n");
                    for v in values {
                        out.push_str(&format!(
                            "| {} | `{}` | {} |\n",
                            v.number,
                            v.name,
                            md(&v.doc.join(" "))
                        ));
                    }
                    out.push('\n');
                }
            }
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_comments_and_sections_are_read() {
        let p = parse(
            "t.proto",
            "// Header line.\nsyntax = \"proto3\";\n\npackage strata.thing.v1;\n\n// ---- things ----\n\n\
             // A thing was made.\nmessage ThingMade {\n  string id = 1;  // the id\n  // Leading.\n  \
             repeated string tags = 2;\n  map<string, int64> limits = 3;\n  optional uint64 size = 4 [deprecated = true];\n}\n\
             message Empty {}\nenum Color {\n  RED = 0; // red\n}\n",
        )
        .unwrap();
        assert_eq!(p.category(), "thing");
        assert_eq!(p.intro, ["Header line."]);
        assert!(matches!(&p.items[0], Item::Note(l) if l == &["---- things ----"]));
        let Item::Message { name, doc, fields } = &p.items[1] else {
            panic!("{:?}", p.items)
        };
        assert_eq!(name, "ThingMade");
        assert_eq!(doc, &["A thing was made."]);
        let got: Vec<(&str, &str, &str, &str, String)> = fields
            .iter()
            .map(|f| {
                (
                    f.label.as_str(),
                    f.ty.as_str(),
                    f.name.as_str(),
                    f.number.as_str(),
                    f.doc.join(" "),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("", "string", "id", "1", "the id".to_string()),
                ("repeated", "string", "tags", "2", "Leading.".to_string()),
                ("", "map<string, int64>", "limits", "3", String::new()),
                ("optional", "uint64", "size", "4", String::new()),
            ]
        );
        assert!(
            matches!(&p.items[2], Item::Message { name, fields, .. } if name == "Empty" && fields.is_empty())
        );
        assert!(
            matches!(&p.items[3], Item::Enum { name, values, .. } if name == "Color" && values.len() == 1)
        );
        assert_eq!(prose(&["---- a <b> ----".into()]), "**a &lt;b&gt;**");
        assert_eq!(md("x | `<y>` <z>"), "x \\| `<y>` &lt;z&gt;");
    }

    #[test]
    fn every_event_type_is_documented_and_the_file_is_current() {
        let text = events_markdown(Path::new(PROTO_DIR)).expect("render docs/EVENTS.md");
        for t in [
            "identity.ProjectCreated.v1",
            "image.ImageCreated.v1",
            "compute.ServerCreated.v1",
            "volume.VolumeCreated.v1",
            "network.PortCreated.v1",
            "object.ObjectStored.v1",
        ] {
            assert!(
                text.contains(&format!("### `{t}`")),
                "{t} is not documented"
            );
        }
        let stored = std::fs::read_to_string(EVENTS_MD).unwrap_or_default();
        if stored != text {
            let line = stored
                .lines()
                .zip(text.lines())
                .position(|(a, b)| a != b)
                .map(|i| i + 1)
                .unwrap_or_else(|| stored.lines().count().min(text.lines().count()) + 1);
            panic!(
                "docs/EVENTS.md differs from the schemas in proto/ (first at line {line}); regenerate it with \
                 `{REGENERATE}` and commit it"
            );
        }
    }
}
