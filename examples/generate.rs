//! Writes what the package installs beside the binaries, from the sources themselves:
//! man pages from the clap definitions (`svirt-pool(8)` and one page per subcommand,
//! as `git` has) and `svirt-pool.toml(5)` from docs/config.md's key tables, and the
//! shell completions (bash, zsh, fish). `scripts/package` runs it at every build:
//!
//!     cargo run --release --example generate -- OUT_DIR
//!
//! An example, not a binary of the package: it is built only when asked, and its
//! dependencies (clap_mangen, clap_complete, roff) are dev-dependencies.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use roff::{Roff, bold, italic, roman};
use svirt_pool::cli::Cli;

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).expect("usage: generate OUT_DIR"));
    let (man, completions) = (out.join("man"), out.join("completions"));
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    let cmd = Cli::command();
    let mut pages = Vec::new();
    man_pages(&cmd, "svirt-pool", "svirt-pool", &man, &mut pages)?;
    let config_doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/config.md");
    let page = man.join("svirt-pool.toml.5");
    std::fs::write(&page, config_page(&std::fs::read_to_string(config_doc)?))?;
    pages.push(page);
    for (shell, name) in [
        (Shell::Bash, "svirt-pool"),
        (Shell::Zsh, "_svirt-pool"),
        (Shell::Fish, "svirt-pool.fish"),
    ] {
        let mut file = std::fs::File::create(completions.join(name))?;
        clap_complete::generate(shell, &mut Cli::command(), "svirt-pool", &mut file);
    }
    for p in &pages {
        println!("{}", p.display());
    }
    Ok(())
}

/// `NAME.8` for `cmd` (typed as `typed`: `svirt-pool guest define`), then one page
/// for each of its subcommands (`NAME-SUB.8`).
fn man_pages(
    cmd: &clap::Command,
    name: &str,
    typed: &str,
    dir: &Path,
    pages: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let page = dir.join(format!("{name}.8"));
    // clap names commands with &'static str (without its `string` feature): the few
    // names of this one run are leaked.
    let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
    let cmd = cmd
        .clone()
        .name(leak(name))
        .display_name(leak(name))
        .bin_name(leak(typed));
    let mut text = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("svirt-pool")
        .source(format!("svirt-pool {}", env!("CARGO_PKG_VERSION")))
        .render(&mut text)?;
    std::fs::write(&page, text)?;
    pages.push(page);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub_name = sub.get_name();
        man_pages(
            sub,
            &format!("{name}-{sub_name}"),
            &format!("{typed} {sub_name}"),
            dir,
            pages,
        )?;
    }
    Ok(())
}

/// Text of a markdown cell as a man page shows it: no backticks, links as their text.
fn plain(cell: &str) -> String {
    let mut text = cell.replace('`', "");
    // [text](target) -> text
    while let (Some(open), Some(mid)) = (text.find('['), text.find("](")) {
        let Some(close) = text[mid..].find(')').map(|c| mid + c) else {
            break;
        };
        if open > mid {
            break;
        }
        text = format!(
            "{}{}{}",
            &text[..open],
            &text[open + 1..mid],
            &text[close + 1..]
        );
    }
    text.trim().to_owned()
}

/// `svirt-pool.toml(5)`: docs/config.md's introduction, its example and every row of
/// its key tables (`| key | default | meaning |`).
fn config_page(doc: &str) -> String {
    let intro: Vec<&str> = doc
        .lines()
        .skip_while(|l| l.starts_with('#') || l.is_empty())
        .take_while(|l| !l.is_empty())
        .collect();
    let example: Vec<&str> = doc
        .lines()
        .skip_while(|l| !l.starts_with("```toml"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .collect();
    let mut page = Roff::new();
    page.control(
        "TH",
        [
            "SVIRT-POOL.TOML",
            "5",
            "",
            &format!("svirt-pool {}", env!("CARGO_PKG_VERSION")),
            "svirt-pool",
        ],
    )
    .control("SH", ["NAME"])
    .text([roman(
        "svirt-pool.toml - configuration of the svirt-pool agent and its commands",
    )])
    .control("SH", ["SYNOPSIS"])
    .text([bold("/etc/svirt-pool/svirt-pool.toml")])
    .control("SH", ["DESCRIPTION"])
    .text([roman(plain(&intro.join(" ")))])
    .control("SH", ["EXAMPLE"])
    .control("nf", [] as [&str; 0]);
    for line in &example {
        page.text([roman(*line)]);
    }
    page.control("fi", [] as [&str; 0]).control("SH", ["KEYS"]);
    for row in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").collect();
        let [key, default, meaning] = cells[..] else {
            continue;
        };
        page.control("TP", [] as [&str; 0])
            .text([bold(plain(key))])
            .text([italic("Default: "), roman(plain(default))])
            .control("br", [] as [&str; 0])
            .text([roman(plain(meaning))]);
    }
    page.control("SH", ["SEE ALSO"]).text([
        bold("svirt-pool"),
        roman("(8), "),
        bold("svirt-pool-agent"),
        roman("(8); /usr/share/doc/svirt-pool/docs/config.md"),
    ]);
    page.render()
}
