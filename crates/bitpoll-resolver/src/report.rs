//! Turns PubGrub's derivation tree into an explanation a person can act on: sentences about
//! requirement files and packages ("the requirements need foo >=2", "bar 1.0 from nixpkgs
//! depends on baz ==3.1 (nixpkgs)"), followed by notes on why versions were skipped.

use pubgrub::{
    DefaultStringReporter, DerivationTree, Derived, External, Map, ReportFormatter, Reporter, Term,
    VersionSet,
};

use crate::universe::{Pkg, Universe};
use crate::version::Range;

type Ext = External<Pkg, Range, String>;
type Der = Derived<Pkg, Range, String>;

struct Formatter;

fn term(p: &Pkg, r: &Range) -> String {
    if *p == Pkg::Root {
        return p.to_string();
    }
    if *r == Range::full() || *r == Range::any() {
        format!("{p}")
    } else {
        format!("{p} {r}")
    }
}

impl ReportFormatter<Pkg, Range, String> for Formatter {
    type Output = String;

    fn format_external(&self, external: &Ext) -> String {
        match external {
            External::NotRoot(p, _) => format!("we are solving the dependencies of {p}"),
            External::NoVersions(p, r) => {
                if *r == Range::full() || *r == Range::any() {
                    format!("no usable version of {p} exists")
                } else {
                    format!("no usable version of {p} matches {r}")
                }
            }
            External::Custom(p, r, reason) => format!("{} cannot be used: {reason}", term(p, r)),
            External::FromDependencyOf(p, rp, d, rd) => match p {
                Pkg::Root => format!("the requirements need {}", term(d, rd)),
                _ => format!("{} depends on {}", term(p, rp), term(d, rd)),
            },
        }
    }

    fn format_terms(&self, terms: &Map<Pkg, Term<Range>>) -> String {
        let terms: Vec<_> = terms.iter().collect();
        match terms.as_slice() {
            [] => "the requirements cannot be satisfied".into(),
            [(Pkg::Root, Term::Positive(_))] => "the requirements cannot be satisfied".into(),
            [(p, Term::Positive(r))] => format!("{} cannot be used", term(p, r)),
            [(p, Term::Negative(r))] => format!("{} is required", term(p, r)),
            [(p1, Term::Positive(r1)), (p2, Term::Negative(r2))]
            | [(p2, Term::Negative(r2)), (p1, Term::Positive(r1))] => self.format_external(
                &External::FromDependencyOf((*p1).clone(), r1.clone(), (*p2).clone(), r2.clone()),
            ),
            slice => {
                let parts: Vec<String> = slice
                    .iter()
                    .map(|(p, t)| match t {
                        Term::Positive(r) => term(p, r),
                        Term::Negative(r) => format!("not {}", term(p, r)),
                    })
                    .collect();
                format!("{} cannot be used together", parts.join(", "))
            }
        }
    }

    fn explain_both_external(&self, e1: &Ext, e2: &Ext, current: &Map<Pkg, Term<Range>>) -> String {
        format!(
            "Because {} and {}, {}.",
            self.format_external(e1),
            self.format_external(e2),
            self.format_terms(current)
        )
    }

    fn explain_both_ref(
        &self,
        id1: usize,
        d1: &Der,
        id2: usize,
        d2: &Der,
        current: &Map<Pkg, Term<Range>>,
    ) -> String {
        format!(
            "Because {} ({id1}) and {} ({id2}), {}.",
            self.format_terms(&d1.terms),
            self.format_terms(&d2.terms),
            self.format_terms(current)
        )
    }

    fn explain_ref_and_external(
        &self,
        id: usize,
        d: &Der,
        e: &Ext,
        current: &Map<Pkg, Term<Range>>,
    ) -> String {
        format!(
            "Because {} ({id}) and {}, {}.",
            self.format_terms(&d.terms),
            self.format_external(e),
            self.format_terms(current)
        )
    }

    fn and_explain_external(&self, e: &Ext, current: &Map<Pkg, Term<Range>>) -> String {
        format!(
            "And because {}, {}.",
            self.format_external(e),
            self.format_terms(current)
        )
    }

    fn and_explain_ref(&self, id: usize, d: &Der, current: &Map<Pkg, Term<Range>>) -> String {
        format!(
            "And because {} ({id}), {}.",
            self.format_terms(&d.terms),
            self.format_terms(current)
        )
    }

    fn and_explain_prior_and_external(
        &self,
        prior: &Ext,
        e: &Ext,
        current: &Map<Pkg, Term<Range>>,
    ) -> String {
        format!(
            "And because {} and {}, {}.",
            self.format_external(prior),
            self.format_external(e),
            self.format_terms(current)
        )
    }
}

pub fn explain(tree: &DerivationTree<Pkg, Range, String>, provider: &Universe<'_>) -> String {
    let text = match tree {
        // Collapsing "no versions" leaves a lone requirement when that was the whole story;
        // say why it fails instead of only restating it.
        DerivationTree::External(External::FromDependencyOf(Pkg::Root, _, p, r)) => format!(
            "Because {} and the requirements need {}, the requirements cannot be satisfied.",
            Formatter.format_external(&External::NoVersions(p.clone(), r.clone())),
            term(p, r)
        ),
        _ => DefaultStringReporter::report_with_formatter(tree, &Formatter),
    };
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut names: Vec<_> = tree
        .packages()
        .into_iter()
        .filter_map(|p| match p {
            Pkg::Python(n) | Pkg::Extra(n, _) => Some(n.clone()),
            Pkg::Root => None,
        })
        .collect();
    names.sort();
    names.dedup();
    let notes: Vec<String> = names.iter().flat_map(|n| provider.notes_for(n)).collect();
    if !notes.is_empty() {
        lines.push(String::new());
        lines.push("Notes:".into());
        lines.extend(notes.into_iter().map(|n| format!("  - {n}")));
    }
    lines.join("\n")
}
