//! Placeholder until this benchmark is written; it refuses to run rather than
//! report a figure it did not measure.

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("this benchmark is not built yet")
}
