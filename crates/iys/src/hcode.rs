//! IYS error codes ("H-codes") of the core API.
//!
//! IYS answers a refused request with `{"errors":[{"code":"H175","message":"…"}]}`.
//! [`HCode`] names every core-API code (H001…H586; the ViA `H1000`+ and
//! `OTP-…`/`ERR-…` families are not included), together with the HTTP status IYS
//! sends it with, IYS's Turkish message, a short English gloss and whether sending
//! the request again later can succeed ([`ErrorClass`]).
//!
//! The Turkish messages are IYS's own texts from its OpenAPI document (3.2.0):
//! the response examples, preferring those of the consent operations, otherwise
//! the error table in the "HATA KODLARI" section. Placeholders such as
//! `{{iysCode}}` are kept as IYS writes them. IYS fills them in (and sometimes
//! words a message differently per endpoint), so match on the code, never on the
//! text. Rows whose text departs from IYS's carry a comment in the table below.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Whether a request refused with a given [`HCode`] may succeed if sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again later (rate limits, service busy, timeouts, server errors).
    Retryable,
    /// The request itself is wrong or refused for good; sending it again gives the same answer.
    Permanent,
}

/// Generates [`HCode`] and its lookup methods from one table.
///
/// Each row is `CODE => (http_status, "Turkish message", "English gloss", Class),`
/// and the rows must be in ascending code order (the tests check this).
macro_rules! hcodes {
    ($($code:ident => ($status:literal, $tr:literal, $en:literal, $class:ident),)+) => {
        /// An IYS core-API error code, such as `H175`.
        ///
        /// Written and parsed as its name (`"H175"`), also through serde.
        /// Variants are in ascending code order, so `Ord` sorts numerically.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum HCode {
            $(
                #[doc = concat!("HTTP ", $status, ": ", $en)]
                $code,
            )+
        }

        impl HCode {
            /// Every code, in ascending order.
            pub const ALL: &'static [HCode] = &[$(HCode::$code),+];

            /// The code as IYS writes it, e.g. `"H175"`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(HCode::$code => stringify!($code),)+
                }
            }

            /// The HTTP status IYS answers with when it returns this code.
            pub const fn http_status(self) -> u16 {
                match self {
                    $(HCode::$code => $status,)+
                }
            }

            /// IYS's Turkish message for this code, placeholders such as
            /// `{{iysCode}}` left as IYS writes them.
            pub const fn message_tr(self) -> &'static str {
                match self {
                    $(HCode::$code => $tr,)+
                }
            }

            /// A short English explanation of the code.
            pub const fn gloss_en(self) -> &'static str {
                match self {
                    $(HCode::$code => $en,)+
                }
            }

            /// Whether sending the request again later may succeed.
            pub const fn class(self) -> ErrorClass {
                match self {
                    $(HCode::$code => ErrorClass::$class,)+
                }
            }

            /// Shorthand for `self.class() == ErrorClass::Retryable`.
            pub const fn is_retryable(self) -> bool {
                matches!(self.class(), ErrorClass::Retryable)
            }
        }

        impl FromStr for HCode {
            type Err = UnknownHCode;

            /// Parses a code exactly as IYS writes it (`"H175"`; case-sensitive).
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $(stringify!($code) => Ok(HCode::$code),)+
                    _ => Err(UnknownHCode { input: s.to_owned() }),
                }
            }
        }
    };
}

// Retryable: every 429 and 5xx, plus H123 (service busy, sent as 400).
hcodes! {
    H001 => (404, "Hizmet Sağlayıcı:{{iysCode}} bulunamadı.", "Service provider (iysCode) not found.", Permanent),
    H014 => (400, "Gönderilen istek JSON formatına uygun olmalıdır.", "Request body is not valid JSON.", Permanent),
    H015 => (500, "Beklenmedik bir hata oluştu.", "Unexpected server error.", Retryable),
    H016 => (400, "Geçersiz girdi tespit edildi, gerekli alanlar: [title, alias, mersis, name, tckn, mobile, city, town, status]", "Dealer create: invalid input; required fields are listed.", Permanent),
    H017 => (400, "{{key}} sahası için {limit} karakter üst sınırına ulaşıldı!", "Dealer create: a field exceeds its length limit.", Permanent),
    H018 => (404, "Marka:{{brandCode}} bulunamadı.", "Brand (brandCode) not found.", Permanent),
    H031 => (404, "Kullanıcı:{{username}} bulunamadı.", "Integrator user (username) not found.", Permanent),
    // IYS's text, stray '!' included (another example has 'Bayi::').
    H058 => (404, "Bayi:{{retailerCode}} bulunamadı.!", "Dealer (retailerCode) not found.", Permanent),
    H060 => (500, "Bayi:{{retailerCode}} güncelleme operasyonu gerçekleştirilemedi.", "Dealer update failed on the server.", Retryable),
    H061 => (500, "Bayi:{{retailerCode}} silme operasyonu gerçekleştirilemedi.", "Dealer delete failed on the server.", Retryable),
    H062 => (500, "Bayi:{{retailerCode}} kaydetme operasyonu gerçekleştirilemedi", "Dealer save failed on the server.", Retryable),
    H067 => (400, "Yeni üretilebilecek 8 haneli bayi kodu kalmamıştır.", "No free 8-digit dealer codes are left.", Permanent),
    H082 => (400, "enum listeleme işlemi başarısız.", "Listing enum values failed.", Permanent),
    // 'limitinine' is IYS's spelling.
    H083 => (429, "Saniyede kabul edilen istek limitinine ulaşıldı. Lütfen daha sonra tekrar deneyiniz.", "Per-second request limit reached (ViA/OTP services).", Retryable),
    H084 => (429, "Saatte kabul edilen kimlik doğrulama istek limitine ulaşıldı. Lütfen daha sonra tekrar deneyiniz.", "Hourly authentication (token) request limit reached; stop token calls for an hour.", Retryable),
    H085 => (400, "İzin ekleme isteği geçerli olmalıdır.", "Invalid add-consent request.", Permanent),
    H086 => (429, "Saatte kabul edilen tekil izin durumu sorgulama istek limitine ulaşıldı. Lütfen daha sonra tekrar deneyiniz.", "Hourly single consent status query limit reached.", Retryable),
    H089 => (429, "Saatte kabul edilen izin geçmişi listeleme istek limitine ulaşıldı. Lütfen daha sonra tekrar deneyiniz.", "Hourly consent history listing limit reached.", Retryable),
    H090 => (400, "Bayi ekleme isteği geçerli olmalıdır.", "Invalid dealer-access add request.", Permanent),
    // IYS's example leaves {{BATCH_CONSENT_COUNT}} unexpanded; 1000 per the error table.
    H091 => (422, "İzin ekleme sayısı en fazla 1000 olmalıdır.", "Bulk add: more than 1000 consents in one request.", Permanent),
    H092 => (400, "Çoklu izin ekleme isteği geçerli olmalıdır.", "Invalid bulk add-consent request.", Permanent),
    // error-table text; push examples reuse H093 for a missing username/password.
    H093 => (422, "transactionId bulunamadı.", "transactionId not found (push registration reuses this code for a missing username or password).", Permanent),
    H095 => (400, "İşlem (transaction) isteği geçerli olmalıdır.", "Invalid transaction request.", Permanent),
    H097 => (400, "İzin sorgulama isteği geçerli olmalıdır.", "Invalid consent status query request.", Permanent),
    H098 => (400, "Günlük izin değişim sorgulama isteği geçerli olmalıdır.", "Invalid daily consent change query request.", Permanent),
    H100 => (500, "Sunucuya kurtarma verisi kaydedilemedi.", "Server could not save recovery data.", Retryable),
    H101 => (500, "Sunucuya esas veri kaydedilemedi.", "Server could not save the main data.", Retryable),
    H102 => (500, "Şifreleme işlemleri yapılamadı.", "Server-side encryption failed.", Retryable),
    H103 => (500, "Sunucuda arama yapılamadı.", "Server-side search failed.", Retryable),
    H105 => (500, "Şifre çözme işlemi başarısız oldu.", "Server-side decryption failed.", Retryable),
    H106 => (500, "Durum raporu oluşturulamadı.", "Status report could not be created.", Retryable),
    H107 => (500, "İzinler listelenemedi.", "Consents could not be listed.", Retryable),
    H110 => (422, "Durum (status) bulunamadı.", "status is missing.", Permanent),
    H111 => (422, "İzin tipi (type) bulunamadı.", "type is missing.", Permanent),
    H112 => (422, "İzin tarihi (consentDate) bulunamadı.", "consentDate is missing.", Permanent),
    H113 => (422, "İzin kaynağı (source) bulunamadı.", "source is missing.", Permanent),
    H114 => (422, "Alıcı (recipient) bulunamadı.", "recipient is missing.", Permanent),
    H115 => (422, "Durum (status) için uygun değerler: ONAY, RET", "status must be ONAY or RET.", Permanent),
    H116 => (422, "Alıcı tipi (recipientType) için uygun değerler: BIREYSEL, TACIR", "recipientType must be BIREYSEL or TACIR.", Permanent),
    H117 => (422, "İzin tipi (type) için uygun değerler: ARAMA, MESAJ, EPOSTA", "type must be ARAMA, MESAJ or EPOSTA.", Permanent),
    // error-table text; the addConsent example drops the leading field name.
    H118 => (422, "Alan değeri kabul edilemedi. İstek gövdesinde bulunabilecek değerler: recipientType, retailerAccess, recipient, retailerCode, source, type, consentDate, status olmalıdır.", "Unknown property in the request body; lists the allowed property names.", Permanent),
    H119 => (422, "İzin kaynağı (source) için uygun değerler: HS_FIZIKSEL_ORTAM, HS_ISLAK_IMZA, HS_WEB, HS_CAGRI_MERKEZI, HS_SOSYAL_MEDYA, HS_EPOSTA, HS_MESAJ, HS_MOBIL, HS_EORTAM, HS_ETKINLIK, HS_2015, HS_ATM, HS_KARAR", "source is not one of the accepted values (13 HS_* values incl. HS_KARAR).", Permanent),
    H120 => (422, "Alıcı (recipient) kabul edilemedi. Geçerli bir eposta adresi giriniz.", "recipient is not a valid e-mail address.", Permanent),
    H121 => (422, "Alıcı (recipient) için E164 uluslararası([+][country code][area code][local phone number]) formatına uygun bir telefon numarası girilmelidir. (örn. +905992000000)", "recipient must be an E.164 phone number, e.g. +905992000000.", Permanent),
    H122 => (422, "Alıcı (recipient) için E164 uluslararası ([+][country code][area code][local phone number]) formatına uygun bir telefon numarası (örn. +905992000000) ya da geçerli bir e-posta adresi girilmelidir.", "recipient must be an E.164 phone number or a valid e-mail address.", Permanent),
    H123 => (400, "Ulaşmaya çalıştığınız servis şu anda meşguldür. Lütfen daha sonra tekrar deneyiniz.", "Service is busy; try again later.", Retryable),
    H124 => (429, "Saniyede kabul edilen istek limitine ulaşıldı. Lütfen daha sonra tekrar deneyiniz.", "Per-second request limit reached; back off and try again.", Retryable),
    H125 => (422, "Tek seferde eklenecek izin sayısı en fazla 1000 olmalıdır.", "At most 1000 consents may be added at once.", Permanent),
    // addBatchConsent text (3000); dealer-access operations say 100.
    H126 => (422, "İzin erişimi olan bayilerin (retailer) liste uzunluğu en fazla 3000 olmalıdır.", "retailerAccess list is too long (3000 on consent add, 100 on dealer-access operations).", Permanent),
    H127 => (422, "Alıcı listesi (recipients) uzunluğu en fazla 100 olmalıdır.", "recipients list is longer than 100.", Permanent),
    H129 => (404, "Entegratör bulunamadı.", "Integrator not found.", Permanent),
    H155 => (422, "İzin kaynağı “1 Mayıs 2015 öncesi” olan izinler için, izin tarihi sadece 2015-05-01 00:00:00 olabilir.", "Source HS_2015 (before 1 May 2015) requires consentDate 2015-05-01 00:00:00.", Permanent),
    H156 => (422, "İzinler için 1 Mayıs 2015’den önceki tarihler kabul edilmemektedir.", "Consent dates before 1 May 2015 are not accepted.", Permanent),
    H157 => (422, "Geçerli bir tarih girilmelidir.", "consentDate is not a valid date.", Permanent),
    H158 => (422, "İzin tarihi yyyy-mm-dd hh:mm:ss formatında olmalıdır.", "consentDate must have the format yyyy-mm-dd hh:mm:ss.", Permanent),
    H160 => (422, "Alıcı için telefon numaraları 15 karakterden uzun olmamalıdır.", "Phone number recipient is longer than 15 characters.", Permanent),
    H162 => (422, "Mevcut tarih ve saatten ileri bir tarih ve saat girilmemelidir.", "Date and time must not be in the future.", Permanent),
    H163 => (422, "İzin erişimi olan bayilerin (retailer) listesi boş olmamalıdır.", "retailerAccess list is empty.", Permanent),
    H164 => (422, "Alıcı listesi (recipients) kabul edilemedi. Liste boş olmamalıdır.", "recipients list is empty.", Permanent),
    H166 => (422, "Alıcı için telefon numaraları 15 karakterden uzun olmamalıdır.", "Phone number recipient is longer than 15 characters (status and dealer-access queries).", Permanent),
    H168 => (422, "Alıcı listesi (recipients) bulunamadı.", "recipients list is missing.", Permanent),
    H169 => (422, "Bayiler (retailerAccess) bulunamadı.", "retailerAccess is missing.", Permanent),
    H170 => (422, "Alıcı tipi (recipientType) bulunamadı.", "recipientType is missing.", Permanent),
    H171 => (400, "Bayi izin erişimi vermek için geçerli bir istek gönderilmelidir.", "Invalid request to grant dealer access to consents.", Permanent),
    H172 => (400, "Bayi izin erişimini silmek için geçerli bir istek gönderilmelidir.", "Invalid request to remove dealer access to consents.", Permanent),
    H173 => (400, "Bayi izin erişimi sorgulamak için geçerli bir istek gönderilmelidir.", "Invalid request to query dealer access to consents.", Permanent),
    // addConsent example text; the error table writes 'İzin durumu: ONAY / RET'.
    H174 => (400, "İzin durumu (status) güncellemesi için farklı bir durum girilmelidir. İzin durumu: RET", "Status update must change the status; the consent already has this status.", Permanent),
    H175 => (400, "İlk defa kaydedilen bir iznin durum (status) bilgisi RET olmamalıdır.", "A consent recorded for the first time must not have status RET.", Permanent),
    H176 => (400, "Sadece admin hesabıyla işlem yapılabilir.", "Only the admin account may perform this operation.", Permanent),
    H178 => (400, "Sistemdeki iznin tarihinden önceki tarihli izinlerle güncelleme yapılamaz.", "Cannot update with a consent dated before the consent already stored.", Permanent),
    H179 => (500, "İzin tarihi karşılaştırması yapılamadı.", "Server could not compare consent dates.", Retryable),
    H180 => (403, "İstek gövdesinde yer alan bayi İYS numarasıyla (retailerCode) herhangi bir bayi bulunamadı.", "No dealer exists with the given retailerCode.", Permanent),
    H181 => (500, "Bayi bilgisi listelenemedi.", "Dealer information could not be listed.", Retryable),
    // the consentsHistory examples swap H182 and H183; the table order is kept.
    H182 => (422, "offset değeri geçerli olmalıdır.", "offset is invalid.", Permanent),
    H183 => (422, "limit değeri geçerli olmalıdır.", "limit is invalid.", Permanent),
    H184 => (422, "all değeri geçerli olmalıdır.", "all is invalid.", Permanent),
    H185 => (422, "short değeri geçerli olmalıdır.", "short is invalid.", Permanent),
    H186 => (422, "Sayfalama (pagination) değeri en fazla 100 olabilir.", "Pagination value may be at most 100.", Permanent),
    H187 => (422, "Limit değerleri sıfır olmamalıdır.", "limit must not be zero.", Permanent),
    H190 => (422, "iysCode integer bir değer olmalıdır.", "iysCode must be an integer.", Permanent),
    // error-table text; push examples reuse H191 for a connection timeout.
    H191 => (422, "brandCode integer bir değer olmalıdır.", "brandCode must be an integer (push registration reuses this code for a connection timeout).", Permanent),
    H192 => (503, "İstek zaman aşımına uğradı.", "Request timed out.", Retryable),
    H193 => (422, "Alıcı (recipient) değeri liste içinde tekrarlanamaz.", "Duplicate recipient or dealer code in the list.", Permanent),
    H194 => (422, "İzin listede daha önce tanımlandı. Liste içinde izinler alıcı tipi (recipientType), tip (type) ve alıcı (recipient) değerleri için tekrarlanamaz.", "Duplicate consent in a bulk list (same recipientType, type and recipient).", Permanent),
    H195 => (403, "Marka bilgisi için sunucuda arama yapılamadı.", "Server-side brand search failed.", Permanent),
    H196 => (403, "Sunucudan iysCode bilgisi elde edilemedi.", "Server could not resolve the iysCode.", Permanent),
    H197 => (422, "Arama için kullanılacak karakter öbeği (text) bulunamadı.", "Search text is missing.", Permanent),
    H198 => (422, "requestId 36 karakterden daha uzun olamaz.", "requestId is longer than 36 characters.", Permanent),
    H199 => (422, "requestId sadece harflerden meydana gelemez.", "requestId must not consist only of letters.", Permanent),
    H201 => (400, "Girilen durum değeri geçersiz. Beklenen değerler: [active, suspended, passive]", "Invalid dealer status; expected active, suspended or passive.", Permanent),
    H214 => (400, "Bayi ticaret unvanı boş bırakılamaz!", "Dealer title must not be empty.", Permanent),
    H215 => (400, "Bayi yetkilisi isim alanı boş bırakılamaz!", "Dealer contact name must not be empty.", Permanent),
    H216 => (400, "Bayi yetkilisi tckn alanı boş bırakılamaz!", "Dealer contact TCKN must not be empty.", Permanent),
    H217 => (400, "Bayi il alanı boş bırakılamaz!", "Dealer city must not be empty.", Permanent),
    H218 => (400, "Bayi il alanının code alanı boş bırakılamaz!", "Dealer city code must not be empty.", Permanent),
    H219 => (400, "Bayi il alanının name alanı boş bırakılamaz!", "Dealer city name must not be empty.", Permanent),
    H220 => (400, "Bayi ilçe alanı boş bırakılamaz!", "Dealer town must not be empty.", Permanent),
    H221 => (400, "Bayi ilçe alanının code alanı boş bırakılamaz!", "Dealer town code must not be empty.", Permanent),
    H222 => (400, "Bayi ilçe alanının name alanı boş bırakılamaz!", "Dealer town name must not be empty.", Permanent),
    H224 => (400, "Telefon numarası geçersiz. Lütfen E164 uluslararası([+][country code][area code][local phone number]) formata uygun bir telefon numarası giriniz. (örn. +905992000000)", "Dealer phone number is not a valid E.164 number.", Permanent),
    H225 => (400, "Kimlik numarası değeri geçersiz.", "Dealer TCKN (national ID number) is invalid.", Permanent),
    H226 => (400, "Kimlik numarası değeri 11 karakter olmalıdır.", "Dealer TCKN must be 11 characters.", Permanent),
    H227 => (400, "Bayi mersis değeri geçersiz.", "Dealer MERSIS number is invalid.", Permanent),
    H228 => (400, "Mersis değeri 16 karakter olmalıdır.", "Dealer MERSIS number must be 16 characters.", Permanent),
    H229 => (400, "name alfanümerik olmalıdır.", "Dealer name, title or alias must be alphanumeric.", Permanent),
    H230 => (400, "mersis numarası tekil olmalıdır.", "Dealer MERSIS number must be unique.", Permanent),
    H231 => (400, "kimlik numarası tekil olmalıdır.", "Dealer TCKN must be unique.", Permanent),
    H241 => (400, "enum getirme işlemi başarısız.", "Fetching enum values failed.", Permanent),
    H243 => (400, "Lütfen geçerli bir Vergi Kimlik Numarası giriniz.", "Invalid tax ID (VKN).", Permanent),
    H244 => (400, "Tin değeri 10 veya 11 karakter olmalıdır.", "TIN must be 10 or 11 characters.", Permanent),
    H245 => (400, "Verilen iysCode entegratör grubuna ait değildir!", "The iysCode does not belong to the integrator's group.", Permanent),
    H250 => (400, "Kullanıcı adı veya şifre eksik!", "Username or password is missing.", Permanent),
    H251 => (401, "Kullanıcı kimlik bilgileri geçersiz!", "Invalid credentials.", Permanent),
    H252 => (400, "Kimlik doğrulaması yapılamadı. Kimlik bilgileri eksik!", "Authentication failed: credentials are missing.", Permanent),
    H253 => (400, "Verilen iysCode altında aynı mersis numarası ile kaydedilen pasif bir bayi hâlihazırda mevcuttur.", "A passive dealer with the same MERSIS number or TCKN already exists.", Permanent),
    H266 => (400, "retailerCode değeri istek üzerinde bulunamadı.", "retailerCode is missing from the request (the error table words it as a missing iysCode).", Permanent),
    H267 => (400, "retailerCode değeri boş string olmamalıdır!", "retailerCode must not be an empty string; omit it when unused.", Permanent),
    H268 => (404, "Verilen iysCode'una bağlı entegratör kullanıcısı bulunamadı!", "No integrator user is bound to the iysCode.", Permanent),
    H288 => (400, "Tin değeri boş olmamalıdır", "TIN must not be empty.", Permanent),
    H351 => (401, "Eksik veya geçersiz jeton!", "Missing or invalid access token.", Permanent),
    // addConsent text incl. IYS's 'eşleştiriliemiyor'; the field named varies (iysCode, brandCode, retailerCode, integratorIysCode).
    H353 => (403, "iysCode, kullanıcı izinleriyle eşleştiriliemiyor", "iysCode, brandCode, retailerCode or integratorIysCode does not match the user's rights.", Permanent),
    H355 => (404, "Kullanıcıda (ilgili yetki) yetkisi bulunmamaktadır!", "The user lacks the required right.", Permanent),
    H363 => (400, "Bu servisi kullanabilmek için yetkiniz bulunmamaktadır.", "Not authorised for this service (HS and partner services are separate).", Permanent),
    H400 => (422, "requestId sadece sayılardan meydana gelemez.", "requestId must not consist only of digits.", Permanent),
    H401 => (400, "Bayi eklenmesi beklenen izin sistemde bulunmamaktadır.", "Dealer access: the consent does not exist.", Permanent),
    H402 => (400, "Yetkili marka sorgulama isteği geçersizdir.", "Invalid authorised-brand query request.", Permanent),
    H403 => (400, "İzin durumu sorgulama isteği geçerli olmalıdır.", "Invalid consent status query request.", Permanent),
    H404 => (422, "text en az bir karakter içermelidir.", "text must contain at least one character.", Permanent),
    H405 => (400, "Marka bilgisi sorgulama isteği geçerli olmalıdır.", "Invalid brand query request.", Permanent),
    H408 => (422, "HS_KARAR kaynağından iletilen izinler için durum bilgisi RET olmalıdır.", "Consents with source HS_KARAR must have status RET.", Permanent),
    H412 => (500, "Beklenmedik bir hata oluştu.", "Unexpected server error (push).", Retryable),
    // IYS's example shows a sample number (1007) where {{iysCode}} stands here.
    H437 => (404, "IYS numarası:{{iysCode}} ile abonelik bulunamadı.", "No subscription found for the IYS number.", Permanent),
    H450 => (422, "İzin tipi (type) değeri geçerli olmalıdır.", "Legacy IYS-mediated consent: type must be valid.", Permanent),
    H452 => (422, "İzin tipi (type) değeri ARAMA, MESAJ için beklenen izin kaynağı IYS_CM, IYS_KISAMESAJ olmalıdır.", "Legacy IYS-mediated consent: ARAMA and MESAJ require source IYS_CM or IYS_KISAMESAJ.", Permanent),
    H453 => (422, "Alıcı (recipient) için gün içerisinde yapılan işlem sayısı 2'dir, daha fazla işlem yapılamamaktadır.", "Legacy IYS-mediated consent: at most 2 operations per recipient per day.", Permanent),
    H454 => (422, "İzin kaydetme isteği için verilen istek bilgisi (requestId) geçerli olmalıdır.", "Legacy IYS-mediated consent: requestId is invalid.", Permanent),
    H455 => (422, "İzin kaydetme isteği için verilen doğrulama kodu (verificationCode) geçerli olmalıdır.", "Legacy IYS-mediated consent: verificationCode is invalid.", Permanent),
    H456 => (422, "İzin kaydetme isteği için verilen istek bilgisiyle (requestId) ilgili işlem bulunamadı.", "Legacy IYS-mediated consent: no process found for the requestId.", Permanent),
    H459 => (422, "Alıcı (recipient) için beklenen izin tipi (type) değerleri MESAJ, ARAMA olmalıdır", "Legacy IYS-mediated consent: type must be MESAJ or ARAMA.", Permanent),
    H460 => (422, "Girilen veriler doğrulamadı.", "Legacy IYS-mediated consent: submitted data could not be verified.", Permanent),
    H462 => (400, "TACIR izinleri güncellenirken izin tarihi (consentDate) verilmelidir.", "Updating a TACIR consent requires consentDate.", Permanent),
    H463 => (400, "TACIR izinleri güncellenirken izin kaynağı (source) verilmelidir.", "Updating a TACIR consent requires source.", Permanent),
    H464 => (422, "İzin tipi (type) MESAJ için, alıcı (recipient) telefon formatında olmalıdır.", "Multi-status query: recipient format does not match type (phone for MESAJ, e-mail for EPOSTA).", Permanent),
    H465 => (422, "Alıcı (recipient) için 3 dk içinde yeni bir süreç başlatılamamaktadır", "Legacy IYS-mediated consent: no new process for the recipient within 3 minutes.", Permanent),
    H467 => (422, "Üç iş günü öncesinde alınan izinler kaydedilemez.", "Consents obtained more than three business days ago cannot be recorded.", Permanent),
    H470 => (500, "Beklenmedik bir hata oluştu.", "Unexpected server error.", Retryable),
    H476 => (500, "Beklenmedik bir hata oluştu.", "Unexpected server error.", Retryable),
    H478 => (422, "Alıcı listesi (recipients) liste olmalıdır.", "recipients must be a list.", Permanent),
    H486 => (400, "İzin kaynağı (source) kabul edilemedi. İzin verilen değerler: HS_FIZIKSEL_ORTAM, HS_ISLAK_IMZA, HS_WEB, HS_CAGRI_MERKEZI, HS_SOSYAL_MEDYA, HS_EPOSTA, HS_MESAJ, HS_MOBIL, HS_EORTAM, HS_ETKINLIK, HS_2015, HS_ATM", "source is not accepted (12 HS_* values; HS_KARAR not allowed here).", Permanent),
    H501 => (422, "Tarih formatı yyyy-aa-gg şeklinde olmalıdır.", "reportDate must have the format yyyy-mm-dd.", Permanent),
    H502 => (422, "reportDate alanı en fazla 7 gün önce olabilir.", "reportDate may be at most 7 days in the past.", Permanent),
    H506 => (422, "İzin kaynağı (source) bulunamadı.", "Pull: source is invalid.", Permanent),
    H507 => (422, "limit alanı için karakter üst sınırı 1000 olmalıdır.", "Pull: limit may be at most 1000.", Permanent),
    H512 => (422, "false kabul edilemedi. İzin verilen değerler: true", "agreementStatus must be true.", Permanent),
    H520 => (403, "Abonelik durumu {{PAUSED|EXPIRED}} iken sadece {{HS|Entegratör}} abonelik sorgulama servisine istek atılabilir.", "Subscription is PAUSED or EXPIRED; only the subscription query is allowed.", Permanent),
    H521 => (403, "Abonelik durumu CLOSED iken api kullanılamamaktadır.", "Subscription is CLOSED; the API cannot be used.", Permanent),
    H522 => (400, "Sadece entegrator api user hesabıyla işlem yapılabilir", "Only an integrator API user may do this.", Permanent),
    H524 => (403, "{{iysCode}} için ait abonelik kaydı bulunamadı.", "No subscription record for the iysCode.", Permanent),
    H525 => (422, "Kullanılan izin sayısı maksimum sayıya ulaştığı için yeni izin eklenememektedir.", "Consent quota reached; no new consents can be added.", Permanent),
    H530 => (422, "Bağlantı oluşturulamadı.", "Push connection could not be created or removed.", Permanent),
    H531 => (422, "Bağlantı linki (url) https ile başlamalıdır.", "Push URL must start with https.", Permanent),
    H568 => (200, "Sadece ONAY durumunda olan izinler için link üretilmelidir.", "ViA reject link can only be created for ONAY consents (per-item error in a 200 response).", Permanent),
    H586 => (403, "Aboneliğiniz API kullanımını içermemektedir.", "The subscription does not include API use.", Permanent),
}

impl fmt::Display for HCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when a string is not a known [`HCode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownHCode {
    input: String,
}

impl UnknownHCode {
    /// The string that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for UnknownHCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown IYS error code {:?}", self.input)
    }
}

impl std::error::Error for UnknownHCode {}

impl Serialize for HCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for HCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HCodeVisitor;

        impl Visitor<'_> for HCodeVisitor {
            type Value = HCode;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an IYS error code such as \"H175\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<HCode, E> {
                v.parse()
                    .map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
            }
        }

        deserializer.deserialize_str(HCodeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_size() {
        assert_eq!(HCode::ALL.len(), 163);
    }

    #[test]
    fn all_is_unique_and_sorted() {
        for pair in HCode::ALL.windows(2) {
            assert!(pair[0] < pair[1], "{} before {}", pair[0], pair[1]);
            let number = |c: HCode| c.as_str()[1..].parse::<u16>().unwrap();
            assert!(
                number(pair[0]) < number(pair[1]),
                "{} before {}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn strings_are_well_formed() {
        for &code in HCode::ALL {
            let s = code.as_str();
            assert_eq!(s.len(), 4, "{s}");
            assert!(s.starts_with('H'), "{s}");
            assert!(s[1..].bytes().all(|b| b.is_ascii_digit()), "{s}");
            for text in [code.message_tr(), code.gloss_en()] {
                assert!(!text.is_empty(), "{s}");
                assert_eq!(text, text.trim(), "{s}");
            }
        }
    }

    #[test]
    fn round_trips_through_str() {
        for &code in HCode::ALL {
            assert_eq!(code.to_string(), code.as_str());
            assert_eq!(code.as_str().parse::<HCode>(), Ok(code));
        }
    }

    #[test]
    fn round_trips_through_serde() {
        for &code in HCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<HCode>(&json).unwrap(), code);
            let value = serde_json::Value::String(code.as_str().to_owned());
            assert_eq!(serde_json::from_value::<HCode>(value).unwrap(), code);
        }
    }

    #[test]
    fn deserializes_inside_an_iys_error_body() {
        #[derive(Deserialize)]
        struct Item {
            code: HCode,
            message: String,
        }
        #[derive(Deserialize)]
        struct Body {
            errors: Vec<Item>,
        }
        let body: Body = serde_json::from_str(
            r#"{"errors":[{"code":"H175","message":"İlk defa kaydedilen bir iznin durum (status) bilgisi RET olmamalıdır."}]}"#,
        )
        .unwrap();
        assert_eq!(body.errors[0].code, HCode::H175);
        assert_eq!(body.errors[0].message, HCode::H175.message_tr());
    }

    #[test]
    fn rejects_unknown_strings() {
        for s in [
            "H999", "h175", "", "H1000", "H17", "H0175", " H175", "H175 ", "175",
        ] {
            let err = s.parse::<HCode>().unwrap_err();
            assert_eq!(err.input(), s);
            assert!(err.to_string().contains("unknown IYS error code"));
            assert!(serde_json::from_value::<HCode>(serde_json::Value::String(s.into())).is_err());
        }
        assert!(serde_json::from_str::<HCode>("175").is_err());
        assert!(serde_json::from_str::<HCode>("null").is_err());
    }

    #[test]
    fn retryable_exactly_for_rate_limits_busy_and_server_errors() {
        for &code in HCode::ALL {
            let status = code.http_status();
            let expected = status == 429 || status >= 500 || code == HCode::H123;
            assert_eq!(code.is_retryable(), expected, "{code}");
            assert_eq!(code.class() == ErrorClass::Retryable, expected, "{code}");
        }
    }

    #[track_caller]
    fn pin(code: HCode, status: u16, class: ErrorClass) {
        assert_eq!(code.http_status(), status, "{code}");
        assert_eq!(code.class(), class, "{code}");
    }

    #[test]
    fn pinned_rows() {
        use ErrorClass::{Permanent, Retryable};

        pin(HCode::H084, 429, Retryable);
        pin(HCode::H124, 429, Retryable);
        pin(HCode::H175, 400, Permanent);
        pin(HCode::H178, 400, Permanent);
        pin(HCode::H174, 400, Permanent);
        pin(HCode::H467, 422, Permanent);
        pin(HCode::H351, 401, Permanent);
        pin(HCode::H353, 403, Permanent);
        pin(HCode::H015, 500, Retryable);
        pin(HCode::H123, 400, Retryable);
        pin(HCode::H192, 503, Retryable);
        pin(HCode::H091, 422, Permanent);
        pin(HCode::H568, 200, Permanent);

        assert_eq!(
            HCode::H175.message_tr(),
            "İlk defa kaydedilen bir iznin durum (status) bilgisi RET olmamalıdır."
        );
        assert_eq!(
            HCode::H178.message_tr(),
            "Sistemdeki iznin tarihinden önceki tarihli izinlerle güncelleme yapılamaz."
        );
        assert!(HCode::H174.message_tr().ends_with("İzin durumu: RET"));
        assert_eq!(
            HCode::H467.message_tr(),
            "Üç iş günü öncesinde alınan izinler kaydedilemez."
        );
        assert_eq!(HCode::H351.message_tr(), "Eksik veya geçersiz jeton!");
        assert_eq!(
            HCode::H124.message_tr(),
            "Saniyede kabul edilen istek limitine ulaşıldı. Lütfen daha sonra tekrar deneyiniz."
        );
        assert_eq!(
            HCode::H091.message_tr(),
            "İzin ekleme sayısı en fazla 1000 olmalıdır."
        );
        assert_eq!(
            HCode::H001.message_tr(),
            "Hizmet Sağlayıcı:{{iysCode}} bulunamadı."
        );
    }

    #[test]
    fn ranges_are_expanded() {
        for n in (214..=222).chain(224..=231) {
            let s = format!("H{n}");
            assert!(s.parse::<HCode>().is_ok(), "{s}");
        }
        assert!("H223".parse::<HCode>().is_err());
        assert!("H104".parse::<HCode>().is_err());
    }
}
