//! Column-name heuristics: what a column called `email`, `customer_phone` or `dob` most likely
//! holds. Names are one signal among three (names, sampled values, admin overrides); a name
//! alone tags a column only for categories no detector can recognise from values (person names,
//! addresses, dates of birth) or where the name is unambiguous.

use super::detect::Category;

/// Lower-cased words of a column name (`customerEmail`, `customer_email` → customer, email).
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for ch in name.chars() {
        if ch == '_' || ch == '-' || ch == ' ' || ch == '.' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if ch.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = ch.is_lowercase() || ch.is_ascii_digit();
        cur.extend(ch.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The category a column name suggests, if any.
pub fn category_for_name(name: &str) -> Option<Category> {
    let w = words(name);
    let has = |x: &str| w.iter().any(|v| v == x);
    let joined = w.join("_");
    // Identifiers and counters are never personal data on their own.
    if w.last()
        .is_some_and(|l| matches!(l.as_str(), "id" | "ids" | "count" | "type" | "kind" | "at"))
    {
        return None;
    }
    if has("email") || has("mail") || joined.contains("e_mail") {
        return Some(Category::Email);
    }
    if has("phone") || has("mobile") || has("msisdn") || has("tel") || has("fax") {
        return Some(Category::Phone);
    }
    if has("ssn")
        || has("sin")
        || joined.contains("national_id")
        || joined.contains("tax_id")
        || has("passport")
        || has("nin")
    {
        return Some(Category::NationalId);
    }
    if has("card") || has("pan") || joined.contains("credit_card") || has("cc") {
        return Some(Category::PaymentCard);
    }
    if has("iban") || joined.contains("account_number") || has("bic") {
        return Some(Category::Iban);
    }
    if has("password")
        || has("passwd")
        || has("secret")
        || has("token")
        || joined.contains("api_key")
        || has("apikey")
        || has("hash") && has("password")
        || joined.contains("private_key")
    {
        return Some(Category::Secret);
    }
    if has("dob") || joined.contains("birth") {
        return Some(Category::BirthDate);
    }
    if has("ip") || joined.contains("ip_address") || has("ipaddr") {
        return Some(Category::IpAddress);
    }
    if has("address")
        || has("street")
        || has("addr")
        || has("postcode")
        || joined.contains("zip_code")
        || has("zip")
    {
        return Some(Category::PostalAddress);
    }
    let name_word = has("name") && !has("user") && !has("file") && !has("table") && !has("host");
    if has("firstname")
        || has("lastname")
        || has("surname")
        || has("fullname")
        || (name_word
            && (has("first")
                || has("last")
                || has("full")
                || has("middle")
                || has("given")
                || has("family")
                || has("person")
                || has("customer")
                || has("contact")
                || has("maiden")))
    {
        return Some(Category::PersonName);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_suggest_categories() {
        assert_eq!(category_for_name("email"), Some(Category::Email));
        assert_eq!(category_for_name("customerEmail"), Some(Category::Email));
        assert_eq!(category_for_name("phone_number"), Some(Category::Phone));
        assert_eq!(category_for_name("ssn"), Some(Category::NationalId));
        assert_eq!(
            category_for_name("card_number"),
            Some(Category::PaymentCard)
        );
        assert_eq!(category_for_name("iban"), Some(Category::Iban));
        assert_eq!(category_for_name("password_hash"), Some(Category::Secret));
        assert_eq!(category_for_name("api_key"), Some(Category::Secret));
        assert_eq!(
            category_for_name("date_of_birth"),
            Some(Category::BirthDate)
        );
        assert_eq!(category_for_name("birth_date"), Some(Category::BirthDate));
        assert_eq!(
            category_for_name("last_login_ip"),
            Some(Category::IpAddress)
        );
        assert_eq!(
            category_for_name("street_address"),
            Some(Category::PostalAddress)
        );
        assert_eq!(category_for_name("full_name"), Some(Category::PersonName));
        assert_eq!(category_for_name("first_name"), Some(Category::PersonName));
    }

    #[test]
    fn ordinary_columns_are_not() {
        for n in [
            "id",
            "email_id",
            "amount",
            "created_at",
            "username",
            "file_name",
            "table_name",
            "status",
            "description",
            "shipping_type",
            "abalance",
            "filler",
            "product_name",
        ] {
            assert_eq!(category_for_name(n), None, "{n}");
        }
    }
}
