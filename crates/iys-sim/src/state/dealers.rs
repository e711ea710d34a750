//! Dealers (retailers) of a brand and consents' dealer access.

use serde::{Deserialize, Serialize};

use iys::rules::ValidConsent;
use iys::{HCode, IysError, Location};

use super::{IysState, Key};

/// A dealer (retailer) of a brand.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dealer {
    pub code: u64,
    pub body: iys::wire::Retailer,
}

fn dealer_error(location: Location, code: u64) -> IysError {
    IysError::new(HCode::H180)
        .at_location(location)
        .with_value(code)
}

impl IysState {
    pub(super) fn check_dealers(&self, brand: u64, c: &ValidConsent) -> Result<(), IysError> {
        let known = |code: &u64| {
            self.dealers
                .get(&brand)
                .is_some_and(|d| d.contains_key(code))
        };
        if let Some(code) = c.retailer_code
            && !known(&code)
        {
            return Err(dealer_error(Location::field("retailerCode"), code));
        }
        if let Some(access) = &c.retailer_access
            && let Some(i) = access.iter().position(|c| !known(c))
        {
            return Err(dealer_error(
                Location::indexed("retailerAccess", i),
                access[i],
            ));
        }
        Ok(())
    }

    pub fn dealers(&self, brand: u64) -> impl Iterator<Item = &Dealer> {
        self.dealers
            .get(&brand)
            .into_iter()
            .flat_map(|d| d.values())
    }

    pub fn dealer(&self, brand: u64, code: u64) -> Option<&Dealer> {
        self.dealers.get(&brand)?.get(&code)
    }

    /// Adds a dealer under a fresh random 8-digit code.
    pub fn add_dealer(&mut self, brand: u64, mut body: iys::wire::Retailer) -> u64 {
        let taken: Vec<u64> = self
            .dealers
            .values()
            .flat_map(|d| d.keys().copied())
            .collect();
        let code = loop {
            let c = fastrand::u64(10_000_000..100_000_000);
            if !taken.contains(&c) {
                break c;
            }
        };
        body.retailer_code = Some(code);
        self.dealers
            .entry(brand)
            .or_default()
            .insert(code, Dealer { code, body });
        code
    }

    /// Whether any consent of the brand uses the dealer.
    pub fn dealer_in_use(&self, brand: u64, code: u64) -> bool {
        self.dealer_access
            .iter()
            .any(|(k, set)| k.brand == brand && set.contains(&code))
            || self.by_key.iter().any(|(k, ids)| {
                k.brand == brand
                    && ids
                        .last()
                        .is_some_and(|&id| self.movement(id).retailer_code == Some(code))
            })
    }

    pub fn remove_dealer(&mut self, brand: u64, code: u64) -> bool {
        self.dealers
            .get_mut(&brand)
            .is_some_and(|d| d.remove(&code).is_some())
    }

    pub fn access_of(&self, key: &Key) -> Vec<u64> {
        self.dealer_access
            .get(key)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Checks that every code is a dealer of the brand (403 H180 at the first unknown one).
    pub fn check_dealer_codes(&self, brand: u64, codes: &[u64]) -> Result<(), IysError> {
        match codes.iter().position(|c| self.dealer(brand, *c).is_none()) {
            Some(i) => Err(dealer_error(
                Location::indexed("retailerAccess", i),
                codes[i],
            )),
            None => Ok(()),
        }
    }

    pub fn grant_access(&mut self, key: Key, codes: &[u64]) -> Result<(), IysError> {
        if self.current(&key).is_none() {
            return Err(IysError::new(HCode::H401));
        }
        self.dealer_access.entry(key).or_default().extend(codes);
        Ok(())
    }

    pub fn replace_access(&mut self, key: Key, codes: &[u64]) {
        if self.current(&key).is_some() {
            self.dealer_access
                .insert(key, codes.iter().copied().collect());
        }
    }

    pub fn remove_access(&mut self, key: &Key, codes: Option<&[u64]>) {
        match codes {
            None => {
                self.dealer_access.remove(key);
            }
            Some(codes) => {
                if let Some(set) = self.dealer_access.get_mut(key) {
                    for c in codes {
                        set.remove(c);
                    }
                }
            }
        }
    }
}
