//! Data behind the simulator's info services: `GET /info/city` and
//! `GET /info/town`.
//!
//! Provinces (il) carry their official codes, which are Turkey's licence
//! plate codes 1–81, and their official Turkish names (with Turkish letters,
//! as in IYS's own example: "Adana", "Adıyaman", "Afyonkarahisar", "Ağrı").
//!
//! Districts (ilçe) follow the official lists in force as of 2024. Only the
//! ten most populous provinces are covered for now: İstanbul (39), Ankara
//! (25), İzmir (30), Bursa (17), Antalya (19), Adana (15), Konya (31),
//! Gaziantep (9), Kocaeli (12) and Mersin (13). Other provinces have no
//! districts here yet.
//!
//! District codes: IYS's own numbering is not published; ours is sequential.
//! IYS's example numbers districts 1, 2, 3… (Seyhan 1, Ceyhan 2, Feke 3 for
//! Adana, city code 1). We number all districts in a single global sequence
//! starting at 1, taking provinces in order of code and, within a province,
//! districts in Turkish alphabetical order (a b c ç d e f g ğ h ı i j k l m n
//! o ö p r s ş t u ü v y z). Our codes therefore do not match IYS's example
//! (Seyhan is 12 here, not 1); clients must not rely on particular values.
//! Appending districts of further provinces renumbers every district after
//! them, so keep the order above when extending the list.

/// (code, name) of Turkey's 81 provinces, by code.
pub const CITIES: [(u16, &str); 81] = [
    (1, "Adana"),
    (2, "Adıyaman"),
    (3, "Afyonkarahisar"),
    (4, "Ağrı"),
    (5, "Amasya"),
    (6, "Ankara"),
    (7, "Antalya"),
    (8, "Artvin"),
    (9, "Aydın"),
    (10, "Balıkesir"),
    (11, "Bilecik"),
    (12, "Bingöl"),
    (13, "Bitlis"),
    (14, "Bolu"),
    (15, "Burdur"),
    (16, "Bursa"),
    (17, "Çanakkale"),
    (18, "Çankırı"),
    (19, "Çorum"),
    (20, "Denizli"),
    (21, "Diyarbakır"),
    (22, "Edirne"),
    (23, "Elazığ"),
    (24, "Erzincan"),
    (25, "Erzurum"),
    (26, "Eskişehir"),
    (27, "Gaziantep"),
    (28, "Giresun"),
    (29, "Gümüşhane"),
    (30, "Hakkari"),
    (31, "Hatay"),
    (32, "Isparta"),
    (33, "Mersin"),
    (34, "İstanbul"),
    (35, "İzmir"),
    (36, "Kars"),
    (37, "Kastamonu"),
    (38, "Kayseri"),
    (39, "Kırklareli"),
    (40, "Kırşehir"),
    (41, "Kocaeli"),
    (42, "Konya"),
    (43, "Kütahya"),
    (44, "Malatya"),
    (45, "Manisa"),
    (46, "Kahramanmaraş"),
    (47, "Mardin"),
    (48, "Muğla"),
    (49, "Muş"),
    (50, "Nevşehir"),
    (51, "Niğde"),
    (52, "Ordu"),
    (53, "Rize"),
    (54, "Sakarya"),
    (55, "Samsun"),
    (56, "Siirt"),
    (57, "Sinop"),
    (58, "Sivas"),
    (59, "Tekirdağ"),
    (60, "Tokat"),
    (61, "Trabzon"),
    (62, "Tunceli"),
    (63, "Şanlıurfa"),
    (64, "Uşak"),
    (65, "Van"),
    (66, "Yozgat"),
    (67, "Zonguldak"),
    (68, "Aksaray"),
    (69, "Bayburt"),
    (70, "Karaman"),
    (71, "Kırıkkale"),
    (72, "Batman"),
    (73, "Şırnak"),
    (74, "Bartın"),
    (75, "Ardahan"),
    (76, "Iğdır"),
    (77, "Yalova"),
    (78, "Karabük"),
    (79, "Kilis"),
    (80, "Osmaniye"),
    (81, "Düzce"),
];

/// (code, name, city_code) of districts.
///
/// Codes are sequential from 1: provinces by code, then districts in Turkish
/// alphabetical order within each province (see the module documentation).
pub const TOWNS: &[(u16, &str, u16)] = &[
    // 1 Adana (15)
    (1, "Aladağ", 1),
    (2, "Ceyhan", 1),
    (3, "Çukurova", 1),
    (4, "Feke", 1),
    (5, "İmamoğlu", 1),
    (6, "Karaisalı", 1),
    (7, "Karataş", 1),
    (8, "Kozan", 1),
    (9, "Pozantı", 1),
    (10, "Saimbeyli", 1),
    (11, "Sarıçam", 1),
    (12, "Seyhan", 1),
    (13, "Tufanbeyli", 1),
    (14, "Yumurtalık", 1),
    (15, "Yüreğir", 1),
    // 6 Ankara (25)
    (16, "Akyurt", 6),
    (17, "Altındağ", 6),
    (18, "Ayaş", 6),
    (19, "Bala", 6),
    (20, "Beypazarı", 6),
    (21, "Çamlıdere", 6),
    (22, "Çankaya", 6),
    (23, "Çubuk", 6),
    (24, "Elmadağ", 6),
    (25, "Etimesgut", 6),
    (26, "Evren", 6),
    (27, "Gölbaşı", 6),
    (28, "Güdül", 6),
    (29, "Haymana", 6),
    (30, "Kahramankazan", 6),
    (31, "Kalecik", 6),
    (32, "Keçiören", 6),
    (33, "Kızılcahamam", 6),
    (34, "Mamak", 6),
    (35, "Nallıhan", 6),
    (36, "Polatlı", 6),
    (37, "Pursaklar", 6),
    (38, "Sincan", 6),
    (39, "Şereflikoçhisar", 6),
    (40, "Yenimahalle", 6),
    // 7 Antalya (19)
    (41, "Akseki", 7),
    (42, "Aksu", 7),
    (43, "Alanya", 7),
    (44, "Demre", 7),
    (45, "Döşemealtı", 7),
    (46, "Elmalı", 7),
    (47, "Finike", 7),
    (48, "Gazipaşa", 7),
    (49, "Gündoğmuş", 7),
    (50, "İbradı", 7),
    (51, "Kaş", 7),
    (52, "Kemer", 7),
    (53, "Kepez", 7),
    (54, "Konyaaltı", 7),
    (55, "Korkuteli", 7),
    (56, "Kumluca", 7),
    (57, "Manavgat", 7),
    (58, "Muratpaşa", 7),
    (59, "Serik", 7),
    // 16 Bursa (17)
    (60, "Büyükorhan", 16),
    (61, "Gemlik", 16),
    (62, "Gürsu", 16),
    (63, "Harmancık", 16),
    (64, "İnegöl", 16),
    (65, "İznik", 16),
    (66, "Karacabey", 16),
    (67, "Keles", 16),
    (68, "Kestel", 16),
    (69, "Mudanya", 16),
    (70, "Mustafakemalpaşa", 16),
    (71, "Nilüfer", 16),
    (72, "Orhaneli", 16),
    (73, "Orhangazi", 16),
    (74, "Osmangazi", 16),
    (75, "Yenişehir", 16),
    (76, "Yıldırım", 16),
    // 27 Gaziantep (9)
    (77, "Araban", 27),
    (78, "İslahiye", 27),
    (79, "Karkamış", 27),
    (80, "Nizip", 27),
    (81, "Nurdağı", 27),
    (82, "Oğuzeli", 27),
    (83, "Şahinbey", 27),
    (84, "Şehitkamil", 27),
    (85, "Yavuzeli", 27),
    // 33 Mersin (13)
    (86, "Akdeniz", 33),
    (87, "Anamur", 33),
    (88, "Aydıncık", 33),
    (89, "Bozyazı", 33),
    (90, "Çamlıyayla", 33),
    (91, "Erdemli", 33),
    (92, "Gülnar", 33),
    (93, "Mezitli", 33),
    (94, "Mut", 33),
    (95, "Silifke", 33),
    (96, "Tarsus", 33),
    (97, "Toroslar", 33),
    (98, "Yenişehir", 33),
    // 34 İstanbul (39)
    (99, "Adalar", 34),
    (100, "Arnavutköy", 34),
    (101, "Ataşehir", 34),
    (102, "Avcılar", 34),
    (103, "Bağcılar", 34),
    (104, "Bahçelievler", 34),
    (105, "Bakırköy", 34),
    (106, "Başakşehir", 34),
    (107, "Bayrampaşa", 34),
    (108, "Beşiktaş", 34),
    (109, "Beykoz", 34),
    (110, "Beylikdüzü", 34),
    (111, "Beyoğlu", 34),
    (112, "Büyükçekmece", 34),
    (113, "Çatalca", 34),
    (114, "Çekmeköy", 34),
    (115, "Esenler", 34),
    (116, "Esenyurt", 34),
    (117, "Eyüpsultan", 34),
    (118, "Fatih", 34),
    (119, "Gaziosmanpaşa", 34),
    (120, "Güngören", 34),
    (121, "Kadıköy", 34),
    (122, "Kağıthane", 34),
    (123, "Kartal", 34),
    (124, "Küçükçekmece", 34),
    (125, "Maltepe", 34),
    (126, "Pendik", 34),
    (127, "Sancaktepe", 34),
    (128, "Sarıyer", 34),
    (129, "Silivri", 34),
    (130, "Sultanbeyli", 34),
    (131, "Sultangazi", 34),
    (132, "Şile", 34),
    (133, "Şişli", 34),
    (134, "Tuzla", 34),
    (135, "Ümraniye", 34),
    (136, "Üsküdar", 34),
    (137, "Zeytinburnu", 34),
    // 35 İzmir (30)
    (138, "Aliağa", 35),
    (139, "Balçova", 35),
    (140, "Bayındır", 35),
    (141, "Bayraklı", 35),
    (142, "Bergama", 35),
    (143, "Beydağ", 35),
    (144, "Bornova", 35),
    (145, "Buca", 35),
    (146, "Çeşme", 35),
    (147, "Çiğli", 35),
    (148, "Dikili", 35),
    (149, "Foça", 35),
    (150, "Gaziemir", 35),
    (151, "Güzelbahçe", 35),
    (152, "Karabağlar", 35),
    (153, "Karaburun", 35),
    (154, "Karşıyaka", 35),
    (155, "Kemalpaşa", 35),
    (156, "Kınık", 35),
    (157, "Kiraz", 35),
    (158, "Konak", 35),
    (159, "Menderes", 35),
    (160, "Menemen", 35),
    (161, "Narlıdere", 35),
    (162, "Ödemiş", 35),
    (163, "Seferihisar", 35),
    (164, "Selçuk", 35),
    (165, "Tire", 35),
    (166, "Torbalı", 35),
    (167, "Urla", 35),
    // 41 Kocaeli (12)
    (168, "Başiskele", 41),
    (169, "Çayırova", 41),
    (170, "Darıca", 41),
    (171, "Derince", 41),
    (172, "Dilovası", 41),
    (173, "Gebze", 41),
    (174, "Gölcük", 41),
    (175, "İzmit", 41),
    (176, "Kandıra", 41),
    (177, "Karamürsel", 41),
    (178, "Kartepe", 41),
    (179, "Körfez", 41),
    // 42 Konya (31)
    (180, "Ahırlı", 42),
    (181, "Akören", 42),
    (182, "Akşehir", 42),
    (183, "Altınekin", 42),
    (184, "Beyşehir", 42),
    (185, "Bozkır", 42),
    (186, "Cihanbeyli", 42),
    (187, "Çeltik", 42),
    (188, "Çumra", 42),
    (189, "Derbent", 42),
    (190, "Derebucak", 42),
    (191, "Doğanhisar", 42),
    (192, "Emirgazi", 42),
    (193, "Ereğli", 42),
    (194, "Güneysınır", 42),
    (195, "Hadim", 42),
    (196, "Halkapınar", 42),
    (197, "Hüyük", 42),
    (198, "Ilgın", 42),
    (199, "Kadınhanı", 42),
    (200, "Karapınar", 42),
    (201, "Karatay", 42),
    (202, "Kulu", 42),
    (203, "Meram", 42),
    (204, "Sarayönü", 42),
    (205, "Selçuklu", 42),
    (206, "Seydişehir", 42),
    (207, "Taşkent", 42),
    (208, "Tuzlukçu", 42),
    (209, "Yalıhüyük", 42),
    (210, "Yunak", 42),
];

#[cfg(test)]
mod tests {
    use super::{CITIES, TOWNS};
    use std::collections::HashSet;

    fn city_name(code: u16) -> Option<&'static str> {
        CITIES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
    }

    fn town_city(name: &str) -> Vec<u16> {
        TOWNS
            .iter()
            .filter(|(_, n, _)| *n == name)
            .map(|(_, _, c)| *c)
            .collect()
    }

    /// Turkish alphabetical sort key (the names use only Turkish letters).
    fn turkish_key(s: &str) -> Vec<usize> {
        const ALPHABET: [char; 29] = [
            'a', 'b', 'c', 'ç', 'd', 'e', 'f', 'g', 'ğ', 'h', 'ı', 'i', 'j', 'k', 'l', 'm', 'n',
            'o', 'ö', 'p', 'r', 's', 'ş', 't', 'u', 'ü', 'v', 'y', 'z',
        ];
        s.chars()
            .map(|ch| {
                let lower = match ch {
                    'I' => 'ı',
                    'İ' => 'i',
                    _ => ch.to_lowercase().next().unwrap_or(ch),
                };
                ALPHABET
                    .iter()
                    .position(|&a| a == lower)
                    .unwrap_or_else(|| panic!("unexpected letter {ch:?} in {s:?}"))
            })
            .collect()
    }

    #[test]
    fn cities_have_codes_1_to_81_in_order() {
        for (i, (code, _)) in CITIES.iter().enumerate() {
            assert_eq!(usize::from(*code), i + 1);
        }
        let codes: HashSet<u16> = CITIES.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes.len(), 81);
        assert_eq!(codes, (1..=81).collect());
    }

    #[test]
    fn city_names_are_unique_and_non_empty() {
        let names: HashSet<&str> = CITIES.iter().map(|(_, n)| *n).collect();
        assert_eq!(names.len(), 81);
        assert!(names.iter().all(|n| !n.is_empty() && n.trim() == *n));
    }

    #[test]
    fn city_spot_checks() {
        assert_eq!(city_name(1), Some("Adana"));
        assert_eq!(city_name(2), Some("Adıyaman"));
        assert_eq!(city_name(3), Some("Afyonkarahisar"));
        assert_eq!(city_name(4), Some("Ağrı"));
        assert_eq!(city_name(6), Some("Ankara"));
        assert_eq!(city_name(16), Some("Bursa"));
        assert_eq!(city_name(33), Some("Mersin"));
        assert_eq!(city_name(34), Some("İstanbul"));
        assert_eq!(city_name(35), Some("İzmir"));
        assert_eq!(city_name(63), Some("Şanlıurfa"));
        assert_eq!(city_name(76), Some("Iğdır"));
        assert_eq!(city_name(81), Some("Düzce"));
    }

    #[test]
    fn every_town_belongs_to_a_valid_city() {
        for (code, name, city) in TOWNS {
            assert!(
                city_name(*city).is_some(),
                "town {code} {name} has unknown city {city}"
            );
        }
    }

    #[test]
    fn town_codes_are_unique_and_sequential_from_1() {
        for (i, (code, name, _)) in TOWNS.iter().enumerate() {
            assert_eq!(usize::from(*code), i + 1, "town {name}");
        }
        let codes: HashSet<u16> = TOWNS.iter().map(|(c, _, _)| *c).collect();
        assert_eq!(codes.len(), TOWNS.len());
    }

    #[test]
    fn towns_are_ordered_by_city_then_turkish_alphabet() {
        for pair in TOWNS.windows(2) {
            let (_, a, ca) = pair[0];
            let (_, b, cb) = pair[1];
            assert!(ca <= cb, "{a} ({ca}) before {b} ({cb})");
            if ca == cb {
                assert!(turkish_key(a) < turkish_key(b), "{a} before {b}");
            }
        }
    }

    #[test]
    fn town_names_are_unique_within_a_city() {
        let pairs: HashSet<(&str, u16)> = TOWNS.iter().map(|(_, n, c)| (*n, *c)).collect();
        assert_eq!(pairs.len(), TOWNS.len());
    }

    #[test]
    fn district_counts_of_largest_provinces() {
        let expected: [(u16, usize); 10] = [
            (34, 39), // İstanbul
            (6, 25),  // Ankara
            (35, 30), // İzmir
            (16, 17), // Bursa
            (7, 19),  // Antalya
            (1, 15),  // Adana
            (42, 31), // Konya
            (27, 9),  // Gaziantep
            (41, 12), // Kocaeli
            (33, 13), // Mersin
        ];
        for (city, count) in expected {
            let actual = TOWNS.iter().filter(|(_, _, c)| *c == city).count();
            assert_eq!(actual, count, "districts of {city}");
        }
    }

    #[test]
    fn town_spot_checks() {
        assert_eq!(town_city("Kadıköy"), [34]);
        assert_eq!(town_city("Çankaya"), [6]);
        assert_eq!(town_city("Konak"), [35]);
        assert_eq!(town_city("Seyhan"), [1]);
        assert_eq!(town_city("Ceyhan"), [1]);
        assert_eq!(town_city("Feke"), [1]);
        assert_eq!(town_city("Selçuklu"), [42]);
        assert_eq!(town_city("Şahinbey"), [27]);
        assert_eq!(town_city("İzmit"), [41]);
        // Yenişehir exists in both Bursa and Mersin.
        assert_eq!(town_city("Yenişehir"), [16, 33]);
        assert_eq!(TOWNS[0], (1, "Aladağ", 1));
        // Our numbering, not IYS's (see the module documentation).
        assert!(TOWNS.contains(&(12, "Seyhan", 1)));
    }
}
