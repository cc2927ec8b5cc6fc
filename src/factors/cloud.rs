//! Cloud regions as zones: `aws:eu-west-3`, `gcp:europe-west1`, `azure:westeurope` (or the
//! bare region name, which no two providers share) name a place, and the place names the
//! grid and water factors (the country's, or a US state's); the provider's published fleet
//! PUE and WUE come with it, each with its source and year. Read from
//! `data/cloud_regions.csv` and `data/cloud_providers.csv`.

use crate::csvdata::{self, CsvError};

/// One provider region and where it is.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Region {
    pub provider: String,
    pub region: String,
    /// The city or area the provider names.
    pub location: String,
    /// ISO 3166-1 alpha-3 of the country.
    pub country: String,
    /// ISO 3166-2 subdivision whose grid factor applies (`US-VA`), if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subdivision: String,
    pub source: String,
}

impl Region {
    /// `aws:eu-west-3`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.provider, self.region)
    }

    /// The zone whose grid factor applies.
    pub fn grid_zone(&self) -> &str {
        if self.subdivision.is_empty() {
            &self.country
        } else {
            &self.subdivision
        }
    }
}

/// A provider's fleet-wide efficiency figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    pub key: String,
    pub name: String,
    pub pue: Option<(f64, u32, String)>,
    pub wue: Option<(f64, u32, String)>,
    /// Why a figure is missing, when one is.
    pub missing: String,
}

#[derive(Debug, Clone, Default)]
pub struct CloudTable {
    pub regions: Vec<Region>,
    pub providers: Vec<Provider>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CloudError {
    #[error(transparent)]
    Csv(#[from] CsvError),
    #[error("unknown {provider} region '{region}'; {hint}")]
    UnknownRegion {
        provider: String,
        region: String,
        hint: String,
    },
    #[error("unknown cloud provider '{0}'; use aws:, azure: or gcp: (`decompute factors --zones` lists the regions)")]
    UnknownProvider(String),
}

const PROVIDERS: [&str; 3] = ["aws", "azure", "gcp"];

impl CloudTable {
    pub fn parse(regions_text: &str, providers_text: &str) -> Result<CloudTable, CloudError> {
        let t = csvdata::parse("cloud_regions.csv", regions_text)?;
        let c = |n: &str| t.column(n);
        let (pc, rc, lc, cc, sc, src) = (
            c("provider")?,
            c("region")?,
            c("location")?,
            c("country")?,
            c("subdivision")?,
            c("source")?,
        );
        let mut regions = Vec::with_capacity(t.rows.len());
        for (line, r) in &t.rows {
            let cell = |i: usize| r[i].trim().to_string();
            let region = Region {
                provider: cell(pc).to_ascii_lowercase(),
                region: cell(rc).to_ascii_lowercase(),
                location: cell(lc),
                country: cell(cc).to_ascii_uppercase(),
                subdivision: cell(sc).to_ascii_uppercase(),
                source: cell(src),
            };
            if region.region.is_empty() || region.country.is_empty() {
                return Err(t
                    .row_error(*line, "a region needs a name and a country")
                    .into());
            }
            regions.push(region);
        }
        let t = csvdata::parse("cloud_providers.csv", providers_text)?;
        let c = |n: &str| t.column(n);
        let (kc, nc) = (c("provider")?, c("name")?);
        let (pv, py, ps) = (c("pue")?, c("pue_year")?, c("pue_source")?);
        let (wv, wy, ws) = (c("wue")?, c("wue_year")?, c("wue_source")?);
        let mut providers = Vec::new();
        for (line, r) in &t.rows {
            let figure = |v: usize,
                          y: usize,
                          s: usize,
                          lo: f64,
                          hi: f64|
             -> Result<Option<(f64, u32, String)>, CloudError> {
                if r[v].trim().is_empty() {
                    return Ok(None);
                }
                let x = t.float(*line, r, v)?;
                if !(lo..=hi).contains(&x) {
                    return Err(t
                        .row_error(*line, format!("{} {x} is outside {lo}–{hi}", t.header[v]))
                        .into());
                }
                let year = t.year(*line, r, y)?;
                Ok(Some((x, year, r[s].trim().to_string())))
            };
            let pue = figure(pv, py, ps, 1.0, 4.0)?;
            let wue = figure(wv, wy, ws, 0.0, 20.0)?;
            let missing = [(pue.is_none(), ps), (wue.is_none(), ws)]
                .iter()
                .filter(|(m, _)| *m)
                .map(|(_, s)| r[*s].trim().to_string())
                .collect::<Vec<_>>()
                .join("; ");
            providers.push(Provider {
                key: r[kc].trim().to_ascii_lowercase(),
                name: r[nc].trim().to_string(),
                pue,
                wue,
                missing,
            });
        }
        Ok(CloudTable { regions, providers })
    }

    pub fn provider(&self, key: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.key == key)
    }

    /// The region a zone names: `provider:region`, or a bare region name that one provider
    /// has. `None` when the text is not a cloud region at all (a country, say).
    pub fn find(&self, zone: &str) -> Option<Result<Region, CloudError>> {
        let z = zone.trim().to_ascii_lowercase();
        if let Some((p, r)) = z.split_once(':') {
            if !PROVIDERS.contains(&p) {
                return Some(Err(CloudError::UnknownProvider(crate::term::escape(p))));
            }
            let found = self
                .regions
                .iter()
                .find(|x| x.provider == p && x.region == r)
                .cloned();
            return Some(found.ok_or_else(|| CloudError::UnknownRegion {
                provider: p.to_string(),
                region: crate::term::escape(r),
                hint: self.hint(p, r),
            }));
        }
        let mut hits = self.regions.iter().filter(|x| x.region == z);
        match (hits.next(), hits.next()) {
            (Some(one), None) => Some(Ok(one.clone())),
            _ => None,
        }
    }

    fn hint(&self, provider: &str, region: &str) -> String {
        let mut near: Vec<(usize, &str)> = self
            .regions
            .iter()
            .filter(|x| x.provider == provider)
            .map(|x| (distance(&x.region, region), x.region.as_str()))
            .collect();
        near.sort();
        let close: Vec<String> = near
            .iter()
            .take(3)
            .filter(|(d, _)| *d <= 3)
            .map(|(_, r)| format!("{provider}:{r}"))
            .collect();
        if close.is_empty() {
            "`decompute factors --zones` lists the regions".into()
        } else {
            format!(
                "did you mean {}? (`decompute factors --zones` lists all)",
                close.join(", ")
            )
        }
    }
}

/// Edit distance over characters (the lists are short).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> CloudTable {
        CloudTable::parse(
            include_str!("../../data/cloud_regions.csv"),
            include_str!("../../data/cloud_providers.csv"),
        )
        .expect("shipped cloud tables parse")
    }

    #[test]
    fn regions_by_prefix_or_bare_name() {
        let t = shipped();
        let r = t.find("aws:eu-west-3").expect("cloud").expect("known");
        assert_eq!((r.country.as_str(), r.location.as_str()), ("FRA", "Paris"));
        let r = t.find("AZURE:WestEurope").expect("cloud").expect("known");
        assert_eq!(r.country, "NLD");
        let r = t.find("us-east4").expect("bare").expect("known");
        assert_eq!((r.provider.as_str(), r.grid_zone()), ("gcp", "US-VA"));
        assert!(t.find("FR").is_none() && t.find("France").is_none());
        let e = t
            .find("aws:eu-west-9")
            .expect("cloud")
            .expect_err("unknown");
        assert!(e.to_string().contains("did you mean aws:eu-west-"), "{e}");
        assert!(t.find("ibm:dal10").expect("cloud").is_err());
        // No two providers share a region name, so every bare name is unambiguous.
        for r in &t.regions {
            assert_eq!(t.find(&r.region).expect("bare").expect("one"), *r);
        }
        let aws = t.provider("aws").expect("aws");
        assert!(aws.pue.is_some() && aws.wue.is_some());
        let gcp = t.provider("gcp").expect("gcp");
        assert!(gcp.wue.is_none() && gcp.missing.contains("no fleet WUE"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,30}") {
            let t = shipped();
            let _ = t.find(&s);
            let _ = CloudTable::parse(&s, &s);
        }
    }
}
