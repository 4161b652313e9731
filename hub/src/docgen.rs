//! Man pages and shell completions generated from the CLI's clap definitions, so the
//! installed documentation always says what the binary accepts. Run at package build
//! time (`steward gen-docs DIR`); it writes files and nothing else.

use std::path::Path;

/// `steward gen-docs DIR`; returns the exit code.
pub fn run(cmd: clap::Command, out: &Path) -> i32 {
    match write(cmd, out) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("steward gen-docs: writing into {}: {e}", out.display());
            1
        }
    }
}

/// Writes `man/<name>.1` for the command and every subcommand (nested as
/// `steward-policy-check.1`), and `completions/{steward.bash,_steward,steward.fish}`.
pub fn write(cmd: clap::Command, out: &Path) -> std::io::Result<()> {
    let man = out.join("man");
    std::fs::create_dir_all(&man)?;
    let mut cmd = cmd;
    cmd.build();
    write_man(&cmd, &man, None)?;
    let comp = out.join("completions");
    std::fs::create_dir_all(&comp)?;
    let name = cmd.get_name().to_string();
    for (shell, file) in [
        (clap_complete::Shell::Bash, format!("{name}.bash")),
        (clap_complete::Shell::Zsh, format!("_{name}")),
        (clap_complete::Shell::Fish, format!("{name}.fish")),
    ] {
        let mut f = std::fs::File::create(comp.join(file))?;
        clap_complete::generate(shell, &mut cmd, &name, &mut f);
    }
    Ok(())
}

fn write_man(cmd: &clap::Command, dir: &Path, parent: Option<&str>) -> std::io::Result<()> {
    let name = match parent {
        Some(p) => format!("{p}-{}", cmd.get_name()),
        None => cmd.get_name().to_string(),
    };
    // The page's title is its file name, so `man steward-policy-check` finds it.
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.clone())
        .render(&mut buf)?;
    std::fs::write(dir.join(format!("{name}.1")), buf)?;
    for sub in cmd.get_subcommands() {
        if !sub.is_hide_set() && sub.get_name() != "help" {
            write_man(sub, dir, Some(&name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn pages_for_every_subcommand_and_three_shells() {
        let cmd = clap::Command::new("tool")
            .about("A tool")
            .subcommand(clap::Command::new("config").subcommand(clap::Command::new("check")))
            .subcommand(clap::Command::new("secret").hide(true));
        let dir = tempfile::tempdir().unwrap();
        super::write(cmd, dir.path()).unwrap();
        let mut pages: Vec<_> = std::fs::read_dir(dir.path().join("man"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        pages.sort();
        assert_eq!(pages, ["tool-config-check.1", "tool-config.1", "tool.1"]);
        let page = std::fs::read_to_string(dir.path().join("man/tool-config-check.1")).unwrap();
        assert!(page.contains(".TH tool-config-check"), "{page}");
        for f in ["tool.bash", "_tool", "tool.fish"] {
            let text = std::fs::read_to_string(dir.path().join("completions").join(f)).unwrap();
            assert!(text.contains("config"), "{f}: {text}");
        }
    }
}
