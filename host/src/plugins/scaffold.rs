//! `http-autoinstrument plugin new NAME --lang LANG`: a plugin project that builds with one
//! command (`./build.sh`: its tests, then `NAME.wasm`) and runs in the agent. The SDK and the
//! WIT interface are copied into the project (`sdk/`), from this agent's own sources, so the
//! project matches the agent that made it and needs nothing but the language's toolchain.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A language `plugin new` writes projects in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
    Go,
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::Go => "go",
        })
    }
}

/// A file of the project: its path and contents, and whether it is a script to run.
struct File {
    path: &'static str,
    contents: &'static str,
    executable: bool,
}

const fn file(path: &'static str, contents: &'static str) -> File {
    File {
        path,
        contents,
        executable: false,
    }
}

const fn script(path: &'static str, contents: &'static str) -> File {
    File {
        path,
        contents,
        executable: true,
    }
}

macro_rules! repo {
    ($path:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../", $path))
    };
}

const COMMON: &[File] = &[
    file("sdk/wit/plugin.wit", repo!("wit/plugin.wit")),
    file("spans.jsonl", include_str!("scaffold/spans.jsonl.tmpl")),
];

const RUST: &[File] = &[
    file("Cargo.toml", include_str!("scaffold/rust_Cargo.toml.tmpl")),
    file("Cargo.lock", repo!("guest-sdk/Cargo.lock")),
    file("src/lib.rs", include_str!("scaffold/rust_lib.rs.tmpl")),
    script("build.sh", include_str!("scaffold/rust_build.sh.tmpl")),
    file("sdk/plugin/Cargo.toml", repo!("guest-sdk/Cargo.toml")),
    file("sdk/plugin/src/lib.rs", repo!("guest-sdk/src/lib.rs")),
    file("sdk/plugin/src/batch.rs", repo!("guest-sdk/src/batch.rs")),
    file("sdk/plugin/src/bytes.rs", repo!("guest-sdk/src/bytes.rs")),
    file("sdk/plugin/src/edits.rs", repo!("guest-sdk/src/edits.rs")),
    file("sdk/plugin/src/export.rs", repo!("guest-sdk/src/export.rs")),
    file("sdk/plugin/src/log.rs", repo!("guest-sdk/src/log.rs")),
    file(
        "sdk/plugin/src/testing.rs",
        repo!("guest-sdk/src/testing.rs"),
    ),
    file(
        "sdk/plugin-layout/Cargo.toml",
        repo!("plugin-layout/Cargo.toml"),
    ),
    file(
        "sdk/plugin-layout/src/lib.rs",
        repo!("plugin-layout/src/lib.rs"),
    ),
];

const PYTHON: &[File] = &[
    file("app.py", include_str!("scaffold/python_app.py.tmpl")),
    file(
        "test_app.py",
        include_str!("scaffold/python_test_app.py.tmpl"),
    ),
    script("build.sh", include_str!("scaffold/python_build.sh.tmpl")),
    file(
        "sdk/http_autoinstrument_plugin/__init__.py",
        repo!("guest-sdk/python/http_autoinstrument_plugin/__init__.py"),
    ),
    file(
        "sdk/http_autoinstrument_plugin/layout.py",
        repo!("guest-sdk/python/http_autoinstrument_plugin/layout.py"),
    ),
    file(
        "sdk/http_autoinstrument_plugin/testing.py",
        repo!("guest-sdk/python/http_autoinstrument_plugin/testing.py"),
    ),
];

const JS: &[File] = &[
    file("plugin.js", include_str!("scaffold/js_plugin.js.tmpl")),
    file(
        "plugin.test.js",
        include_str!("scaffold/js_plugin.test.js.tmpl"),
    ),
    script("build.sh", include_str!("scaffold/js_build.sh.tmpl")),
    file("package.json", repo!("guest-sdk/js/package.json")),
    file("package-lock.json", repo!("guest-sdk/js/package-lock.json")),
    file("sdk/index.js", repo!("guest-sdk/js/index.js")),
    file("sdk/layout.js", repo!("guest-sdk/js/layout.js")),
    file("sdk/testing.js", repo!("guest-sdk/js/testing.js")),
    file("sdk/build.mjs", repo!("guest-sdk/js/build.mjs")),
];

const GO: &[File] = &[
    file("go.mod", include_str!("scaffold/go_go.mod.tmpl")),
    file("main.go", include_str!("scaffold/go_main.go.tmpl")),
    file(
        "main_test.go",
        include_str!("scaffold/go_main_test.go.tmpl"),
    ),
    script("build.sh", include_str!("scaffold/go_build.sh.tmpl")),
    file("sdk/go.mod", repo!("guest-sdk/go/go.mod")),
    file("sdk/plugin/batch.go", repo!("guest-sdk/go/plugin/batch.go")),
    file("sdk/plugin/edits.go", repo!("guest-sdk/go/plugin/edits.go")),
    file(
        "sdk/plugin/plugin.go",
        repo!("guest-sdk/go/plugin/plugin.go"),
    ),
    file(
        "sdk/plugin/layout.go",
        repo!("guest-sdk/go/plugin/layout.go"),
    ),
    file(
        "sdk/plugin/host_native.go",
        repo!("guest-sdk/go/plugin/host_native.go"),
    ),
    file(
        "sdk/plugin/export_wasip1.go",
        repo!("guest-sdk/go/plugin/export_wasip1.go"),
    ),
    file(
        "sdk/plugintest/plugintest.go",
        repo!("guest-sdk/go/plugintest/plugintest.go"),
    ),
    file(
        "sdk/adapter/wasi_snapshot_preview1.wat",
        repo!("guest-sdk/go/adapter/wasi_snapshot_preview1.wat"),
    ),
    script("sdk/build.sh", repo!("guest-sdk/go/build.sh")),
];

/// The project's README: what to run, per language.
fn readme(name: &str, lang: Lang) -> String {
    let (needs, test) = match lang {
        Lang::Rust => (
            "cargo, wasm-tools, and rustup's wasm32-unknown-unknown target (or Debian's rustc-web)",
            "cargo test",
        ),
        Lang::Python => (
            "python3, componentize-py 0.25.1",
            "PYTHONPATH=sdk python3 -m unittest",
        ),
        Lang::Js => ("Node.js >= 20 with npm", "node --test plugin.test.js"),
        Lang::Go => ("Go >= 1.24 (GO=/path/to/go), wasm-tools", "go test ./..."),
    };
    format!(
        "# {name}\n\n\
         An http-autoinstrument span processor plugin in {lang}, made by `http-autoinstrument plugin new`.\n\n\
         Needs: {needs}.\n\n\
         ```sh\n\
         ./build.sh                      # runs the tests, then builds {name}.wasm\n\
         {test:<31} # the tests alone\n\
         mkdir -p plugins && cp {name}.wasm plugins/\n\
         http-autoinstrument plugin check plugins/{name}.wasm\n\
         http-autoinstrument plugin run --plugins plugins --input spans.jsonl\n\
         sudo http-autoinstrument --plugins \"$PWD/plugins\"   # in the agent\n\
         ```\n\n\
         `spans.jsonl` holds sample spans; the agent records real ones with `--record-spans FILE`.\n\
         Settings go in `plugins/{name}.toml` (`[settings]` is passed to `init`). `sdk/` is the SDK\n\
         and `sdk/wit/plugin.wit` the interface, copied from the agent that made this project.\n"
    )
}

/// Writes a new plugin project `name` in `parent`; returns its directory.
pub fn new_project(name: &str, lang: Lang, parent: &Path) -> Result<PathBuf> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!(
            "plugin name {name:?}: use lowercase letters, digits and '-', starting with a letter \
             (it names the crate, package or module, and NAME.wasm)"
        );
    }
    let dir = parent.join(name);
    if dir.exists() {
        bail!(
            "{} already exists: choose another name or remove it",
            dir.display()
        );
    }
    let files = match lang {
        Lang::Rust => RUST,
        Lang::Python => PYTHON,
        Lang::Js => JS,
        Lang::Go => GO,
    };
    for f in COMMON.iter().chain(files) {
        let path = dir.join(f.path);
        std::fs::create_dir_all(path.parent().unwrap_or(&dir))
            .with_context(|| format!("cannot create {}", path.display()))?;
        let contents = project_text(f.path, f.contents, name);
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
        if f.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    std::fs::write(dir.join("README.md"), readme(name, lang))?;
    Ok(dir)
}

/// A file's text in the project: templates get the name; the SDK's own manifests are adjusted
/// to their new place.
fn project_text(path: &str, contents: &str, name: &str) -> String {
    match path {
        "package.json" => js_package(contents, name, true),
        "package-lock.json" => js_package(contents, name, false),
        _ => contents.replace("{{name}}", name),
    }
}

/// The SDK's package.json (or lock) as the project's: its name, and scripts that test and build
/// the plugin (npm ci checks the dependencies against the lock, so those stay as they are).
fn js_package(contents: &str, name: &str, manifest: bool) -> String {
    let mut text = contents.replace("\"http-autoinstrument-plugin\"", &format!("\"{name}\""));
    if manifest {
        text = text
            .replace("\"node --test test/\"", "\"node --test plugin.test.js\"")
            .replace("\"node build.mjs\"", "\"./build.sh\"")
            .replace("\"main\": \"index.js\"", "\"main\": \"plugin.js\"");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_each_language_with_the_name_and_refuses_bad_names() {
        let parent = tempfile::tempdir().unwrap();
        for lang in [Lang::Rust, Lang::Python, Lang::Js, Lang::Go] {
            let name = format!("my-{lang}");
            let dir = new_project(&name, lang, parent.path()).unwrap();
            let build = dir.join("build.sh");
            let mode = std::fs::metadata(&build).unwrap().permissions();
            assert_eq!(
                std::os::unix::fs::PermissionsExt::mode(&mode) & 0o111,
                0o111
            );
            let text = std::fs::read_to_string(&build).unwrap();
            assert!(text.contains(&format!("{name}.wasm")), "{text}");
            assert!(!text.contains("{{name}}"));
            assert!(dir.join("sdk/wit/plugin.wit").is_file());
            assert!(std::fs::read_to_string(dir.join("README.md"))
                .unwrap()
                .contains("./build.sh"));
        }
        let package = std::fs::read_to_string(parent.path().join("my-js/package.json")).unwrap();
        assert!(package.contains("\"name\": \"my-js\"") && package.contains("plugin.test.js"));
        let err = new_project("my-go", Lang::Go, parent.path()).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        for bad in ["", "My", "a b", "1x", "x/y"] {
            assert!(
                new_project(bad, Lang::Rust, parent.path()).is_err(),
                "{bad:?}"
            );
        }
    }
}
