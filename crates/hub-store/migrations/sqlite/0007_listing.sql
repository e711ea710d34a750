-- Listings: the audit log newest first per brand, and consents changed since an instant
-- (`changedSince`, incremental exports).
CREATE INDEX audit_log_brand ON audit_log (brand_code, id);
CREATE INDEX consent_changed ON consent (brand_code, updated_at_ms);
