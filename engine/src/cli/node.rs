//! `trawl node`: placeholder until the subcommand is built; it refuses to run
//! rather than pretend.

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`trawl node` is not built yet")
}
