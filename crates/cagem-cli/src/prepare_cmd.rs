//! `cagem prepare-omniglot`.

use cagem::Result;
use cagem::data::omniglot;

use crate::args::PrepareOmniglotArgs;

pub fn run(a: PrepareOmniglotArgs) -> Result<()> {
    eprintln!("deriving 28×28 OMNIGLOT from {}", a.src.display());
    let d = omniglot::derive(&a.src)?;
    for (path, sha) in omniglot::write(&d, &a.out)? {
        println!("{sha}  {}", path.display());
    }
    println!("{} training and {} test images", d.train_labels.len(), d.test_labels.len());
    Ok(())
}
