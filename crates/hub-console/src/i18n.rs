//! Interface text in Turkish and English. Every text is one [`T`] variant with both languages,
//! so a page cannot show a text that has only one.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use crate::session::cookie;

/// The cookie that keeps a chosen language.
pub const LANG_COOKIE: &str = "iyshub_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Tr,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Tr => "tr",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "tr" => Some(Lang::Tr),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language chosen before (cookie), else the browser's first of Turkish or English,
    /// else English.
    pub fn of(headers: &HeaderMap) -> Lang {
        if let Some(l) = cookie(headers, LANG_COOKIE).and_then(|v| Lang::parse(&v)) {
            return l;
        }
        let accept = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        for tag in accept.split(',') {
            let tag = tag.split(';').next().unwrap_or_default().trim();
            let primary = tag.split('-').next().unwrap_or_default();
            if primary.eq_ignore_ascii_case("tr") {
                return Lang::Tr;
            }
            if primary.eq_ignore_ascii_case("en") {
                return Lang::En;
            }
        }
        Lang::En
    }

    pub fn t(self, text: T) -> &'static str {
        text.get(self)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang::of(&parts.headers))
    }
}

macro_rules! texts {
    ($($name:ident => ($en:literal, $tr:literal),)+) => {
        /// One piece of interface text.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum T { $($name,)+ }

        impl T {
            pub const ALL: &'static [T] = &[$(T::$name,)+];

            pub fn get(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $((T::$name, Lang::En) => $en, (T::$name, Lang::Tr) => $tr,)+
                }
            }
        }
    };
}

texts! {
    Title => ("iyshub console", "iyshub konsolu"),
    SignIn => ("Sign in", "Giriş yap"),
    SignOut => ("Sign out", "Çıkış yap"),
    Username => ("User name", "Kullanıcı adı"),
    Password => ("Password", "Parola"),
    BadLogin => ("Wrong user name or password.", "Kullanıcı adı veya parola hatalı."),
    LockedUntil => ("Too many failed sign-ins: this account is locked until", "Çok fazla hatalı giriş: bu hesap şu zamana kadar kilitli:"),
    AddressBlocked => ("Too many failed sign-ins from your address: try again after", "Adresinizden çok fazla hatalı giriş: şu zamandan sonra yeniden deneyin:"),
    Brands => ("Brands", "Markalar"),
    Brand => ("Brand", "Marka"),
    Name => ("Name", "Ad"),
    Mode => ("Mode", "Mod"),
    ModeSync => ("sync (IYS is the master)", "senkron (IYS esas)"),
    ModeIntegrator => ("integrator (the hub is the master)", "entegratör (hub esas)"),
    Connection => ("IYS connection", "İYS bağlantısı"),
    Connected => ("connected", "bağlı"),
    NotConnected => ("not connected", "bağlı değil"),
    Health => ("Health", "Durum"),
    Healthy => ("healthy", "sağlıklı"),
    NeedsAttention => ("needs attention", "dikkat gerekiyor"),
    NoBrands => ("No brands yet. Create one with the API (POST /api/v1/brands).", "Henüz marka yok. API ile oluşturun (POST /api/v1/brands)."),
    Dashboard => ("Dashboard", "Pano"),
    Recipients => ("Recipients", "Alıcılar"),
    ApiKeys => ("API keys", "API anahtarları"),
    Audit => ("Audit log", "Denetim kaydı"),
    Webhooks => ("Webhooks", "Webhook'lar"),
    Segments => ("Segments", "Segmentler"),
    Imports => ("Imports", "İçe aktarmalar"),
    SyncHealth => ("Sync health", "Senkron durumu"),
    LastPull => ("Last pull from IYS", "İYS'den son okuma"),
    CursorAge => ("Cursor age", "İmleç yaşı"),
    Never => ("never", "hiç"),
    Stale => ("stale", "eski"),
    Outbox => ("Changes for IYS (outbox)", "İYS'ye gidecek değişiklikler (giden kutusu)"),
    State => ("State", "Durum"),
    Count => ("Count", "Adet"),
    Paused => ("Dispatch paused", "Gönderim durduruldu"),
    NotPaused => ("Dispatch running", "Gönderim çalışıyor"),
    Quarantined => ("Movements from IYS set aside for a person", "Kişi incelemesi bekleyen İYS hareketleri"),
    AtRisk => ("At risk of missing IYS's 3-business-day deadline", "İYS'nin 3 iş günü süresini kaçırma riski olanlar"),
    Deadline => ("Deadline", "Son tarih"),
    Errors24h => ("IYS errors in the last 24 hours", "Son 24 saatteki İYS hataları"),
    Code => ("Code", "Kod"),
    Meaning => ("Meaning", "Anlamı"),
    NoErrors => ("None.", "Yok."),
    Reconciliation => ("Daily reconciliation with IYS", "İYS ile günlük mutabakat"),
    Day => ("Day", "Gün"),
    Matched => ("Matched", "Eşleşen"),
    Remaining => ("Differences left", "Kalan fark"),
    NeedsPerson => ("For a person", "Kişi gerekli"),
    NoReconciliation => ("No day reconciled yet.", "Henüz mutabakatı yapılan gün yok."),
    Consents => ("Consents now", "Güncel izinler"),
    Channel => ("Channel", "Kanal"),
    Status => ("Status", "Durum"),
    IysState => ("IYS state", "İYS durumu"),
    OptInsOuts => ("Opt-ins and opt-outs, last 30 days", "Son 30 günde onaylar ve retler"),
    OptIns => ("opt-ins", "onaylar"),
    OptOuts => ("opt-outs", "retler"),
    LiveRefresh => ("Refreshed every 15 seconds.", "15 saniyede bir yenilenir."),
    SwitchMode => ("Switch mode", "Modu değiştir"),
    SwitchTo => ("Switch to", "Şuna geç:"),
    SwitchToSyncExplain => ("In sync mode IYS is the master: changes for recipients IYS does not know yet are held until IYS knows them; RETs are always sent.", "Senkron modda İYS esastır: İYS'nin henüz tanımadığı alıcıların değişiklikleri İYS onları tanıyana kadar bekletilir; RET'ler her zaman gönderilir."),
    SwitchToIntegratorExplain => ("In integrator mode the hub is the master: every change is sent to IYS, held ones included.", "Entegratör modda hub esastır: bekletilenler dahil her değişiklik İYS'ye gönderilir."),
    WillHold => ("waiting ONAYs for recipients IYS does not know will be held.", "İYS'nin tanımadığı alıcılara ait bekleyen ONAY bekletilecek."),
    WillRelease => ("held changes will be sent to IYS.", "bekletilen değişiklik İYS'ye gönderilecek."),
    Confirm => ("Confirm", "Onayla"),
    Cancel => ("Cancel", "Vazgeç"),
    Lookup => ("Look up a recipient", "Alıcı ara"),
    LookupHint => ("Phone, e-mail or profile id", "Telefon, e-posta veya profil kimliği"),
    Search => ("Search", "Ara"),
    NothingFound => ("Nothing recorded for", "Kayıt bulunamadı:"),
    Channels => ("Channels", "Kanallar"),
    Categories => ("Categories", "Kategoriler"),
    Category => ("Category", "Kategori"),
    Hold => ("Hold", "Bekletme"),
    Conflict => ("Conflict", "Çakışma"),
    SetHold => ("Set hold", "Beklet"),
    LiftHold => ("Lift hold", "Bekletmeyi kaldır"),
    History => ("History", "Geçmiş"),
    When => ("When", "Zaman"),
    Origin => ("Origin", "Kaynak"),
    Actor => ("Actor", "Yapan"),
    Source => ("Consent source", "İzin kaynağı"),
    ConsentDate => ("Consent date", "İzin tarihi"),
    Outcome => ("Outcome", "Sonuç"),
    IysOutcome => ("IYS", "İYS"),
    Evidence => ("Evidence", "Kanıt"),
    Profile => ("Profile", "Profil"),
    Yes => ("yes", "evet"),
    No => ("no", "hayır"),
    Scopes => ("Scopes", "Yetkiler"),
    Created => ("Created", "Oluşturulma"),
    LastUsed => ("Last used", "Son kullanım"),
    Revoked => ("revoked", "iptal edildi"),
    Revoke => ("Revoke", "İptal et"),
    Rotate => ("Rotate", "Yenile"),
    CreateKey => ("Create a key", "Anahtar oluştur"),
    Create => ("Create", "Oluştur"),
    KeyShownOnce => ("Copy this key now: it is shown only once.", "Bu anahtarı şimdi kopyalayın: yalnızca bir kez gösterilir."),
    Back => ("Back", "Geri"),
    Action => ("Action", "İşlem"),
    Detail => ("Detail", "Ayrıntı"),
    Forbidden => ("You may not do this.", "Bunu yapma yetkiniz yok."),
    NotFound => ("Not found.", "Bulunamadı."),
    BadInput => ("The form has a mistake:", "Formda bir hata var:"),
    ServerError => ("Something went wrong on our side; it was logged.", "Bizim tarafımızda bir sorun oluştu; kaydedildi."),
    Url => ("URL", "URL"),
    Description => ("Description", "Açıklama"),
    Enabled => ("enabled", "etkin"),
    Disabled => ("disabled", "devre dışı"),
    Deliveries => ("Deliveries", "Teslimatlar"),
    Redeliver => ("Redeliver", "Yeniden gönder"),
    Register => ("Register", "Kaydet"),
    Secret => ("Signing secret", "İmza anahtarı"),
    EventTypes => ("Event types", "Olay türleri"),
    All => ("all", "tümü"),
    Members => ("Members", "Üyeler"),
    Export => ("Export", "Dışa aktar"),
    Definition => ("Definition", "Tanım"),
    Progress => ("Progress", "İlerleme"),
    Rejects => ("Rejected rows", "Reddedilen satırlar"),
    Upload => ("Upload", "Yükle"),
    File => ("File", "Dosya"),
    Rows => ("Rows", "Satırlar"),
    Role => ("Role", "Rol"),
    DryRun => ("Dry run: check every row, change nothing", "Deneme: her satırı denetle, hiçbir şeyi değiştirme"),
    MarkHandled => ("Mark as handled", "İşlendi olarak işaretle"),
    Reason => ("Reason", "Neden"),
    Movement => ("Movement as IYS sent it", "İYS'nin gönderdiği hareket"),
    AcknowledgeConflict => ("Keep the RET", "RET'i koru"),
    NewSegment => ("New segment", "Yeni segment"),
    SendableOnly => ("Only those a message may be sent to now (the send-time check's rules)", "Yalnızca şu anda ileti gönderilebilecekler (gönderim denetimi kuralları)"),
    Policy => ("Policy for ONAYs on their way to IYS", "İYS'ye giden ONAY'lar için kural"),
    Automatic => ("as the header says", "başlığa göre"),
    Mapping => ("Columns", "Sütunlar"),
    Column => ("Column in the file", "Dosyadaki sütun"),
    Field => ("Field", "Alan"),
    PreviewAgain => ("Preview with these columns", "Bu sütunlarla önizle"),
    PreviewRows => ("The first rows as they will be read", "Okunacak ilk satırlar"),
    Start => ("Start the import", "İçe aktarmayı başlat"),
    Users => ("Console users", "Konsol kullanıcıları"),
    CreateUser => ("Create a user", "Kullanıcı oluştur"),
    GlobalAdmin => ("Global admin (every brand)", "Genel yönetici (tüm markalar)"),
    BrandsRoles => ("Brands and roles", "Markalar ve roller"),
    ResetPassword => ("New password", "Yeni parola"),
    PasswordShownOnce => ("Give this password to the user now: it is shown only once.", "Bu parolayı kullanıcıya şimdi iletin: yalnızca bir kez gösterilir."),
    LastLogin => ("Last sign-in", "Son giriş"),
    Locked => ("locked", "kilitli"),
    None_ => ("none", "yok"),
    Requeue => ("Send to IYS again", "İYS'ye yeniden gönder"),
    Token => ("IYS token", "İYS belirteci"),
    TokenValidUntil => ("valid until", "geçerlilik sonu"),
    TokenHalted => ("token requests halted by IYS (H084) until", "İYS belirteç isteklerini (H084) şu zamana kadar durdurdu:"),
    NoToken => ("none yet", "henüz yok"),
    Examples => ("Examples", "Örnekler"),
    Settings => ("Settings", "Ayarlar"),
    Save => ("Save", "Kaydet"),
    Saved => ("Saved.", "Kaydedildi."),
    IysCode => ("IYS code", "İYS kodu"),
    BaseUrl => ("IYS address", "İYS adresi"),
    InstanceDefault => ("the instance's connection", "sunucunun bağlantısı"),
    IysUser => ("IYS API user", "İYS API kullanıcısı"),
    IysPassword => ("IYS API password", "İYS API parolası"),
    PushUser => ("Push user (IYS calls the hub)", "Push kullanıcısı (İYS hub'ı çağırır)"),
    PushPassword => ("Push password", "Push parolası"),
    SecretIsSet => ("set; leave empty to keep it", "tanımlı; korumak için boş bırakın"),
    SecretNotSet => ("not set", "tanımlı değil"),
    ClearSecret => ("Remove it", "Kaldır"),
    OnlyProvider => ("Only a global admin may change the IYS connection.", "İYS bağlantısını yalnızca genel yönetici değiştirebilir."),
    Language => ("Türkçe", "English"),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_differs_or_is_a_name() {
        // A Turkish text equal to its English one is a forgotten translation, except for
        // names that are the same in both.
        let same_on_purpose = [T::Url];
        for t in T::ALL {
            if !same_on_purpose.contains(t) {
                assert_ne!(t.get(Lang::En), t.get(Lang::Tr), "{t:?}");
            }
        }
    }

    #[test]
    fn language_from_the_browser() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_LANGUAGE,
            "tr-TR,tr;q=0.9,en;q=0.8".parse().unwrap(),
        );
        assert_eq!(Lang::of(&h), Lang::Tr);
        h.insert(
            header::ACCEPT_LANGUAGE,
            "de-DE,en-GB;q=0.9,tr;q=0.8".parse().unwrap(),
        );
        assert_eq!(Lang::of(&h), Lang::En);
        h.insert(header::ACCEPT_LANGUAGE, "de".parse().unwrap());
        assert_eq!(Lang::of(&h), Lang::En);
        h.insert(header::COOKIE, "a=b; iyshub_lang=tr".parse().unwrap());
        assert_eq!(Lang::of(&h), Lang::Tr);
    }
}
