//! DOM selections posted by the Chrome extension (PROTOCOL.md section 4).

use crate::error::{ApiError, ErrorCode};
use crate::limits::Limits;
use serde::{Deserialize, Serialize};

/// Text fields are cut to this many characters per element.
pub const TEXT_CHARS: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Viewport {
    pub width: f64,
    pub height: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Element {
    pub tag: String,
    #[serde(default)]
    pub classes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub rect: Rect,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub react_component: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DomSelection {
    pub url: String,
    #[serde(default)]
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub viewport: Viewport,
    pub elements: Vec<Element>,
}

fn cut(text: &mut String, max_chars: usize) {
    if let Some((i, _)) = text.char_indices().nth(max_chars) {
        text.truncate(i);
    }
}

fn cut_opt(text: &mut Option<String>, max_chars: usize) {
    if let Some(text) = text {
        cut(text, max_chars);
    }
}

impl DomSelection {
    /// Parses, checks and normalises a posted selection.
    pub fn from_body(body: &[u8], limits: &Limits) -> Result<Self, ApiError> {
        if body.len() > limits.selection_bytes {
            return Err(ApiError::new(
                ErrorCode::TooLarge,
                format!(
                    "selection is {} bytes; the limit is {}",
                    body.len(),
                    limits.selection_bytes
                ),
            ));
        }
        let mut selection: DomSelection = crate::frames::parse_json(body)?;
        selection.validate(limits)?;
        selection.normalise();
        Ok(selection)
    }

    fn validate(&self, limits: &Limits) -> Result<(), ApiError> {
        if !(self.url.starts_with("http://")
            || self.url.starts_with("https://")
            || self.url.starts_with("file://"))
        {
            return Err(ApiError::invalid_field("url must be an http(s) URL"));
        }
        if self.url.len() > 4096 {
            return Err(ApiError::invalid_field("url is longer than 4096 bytes"));
        }
        if self.elements.is_empty() {
            return Err(ApiError::invalid_field("elements must not be empty"));
        }
        if self.elements.len() > limits.selection_elements {
            return Err(ApiError::new(
                ErrorCode::TooLarge,
                format!(
                    "{} elements; the limit is {}",
                    self.elements.len(),
                    limits.selection_elements
                ),
            ));
        }
        let finite = |v: f64| v.is_finite();
        if !(finite(self.viewport.width) && finite(self.viewport.height)) {
            return Err(ApiError::invalid_field("viewport must be finite numbers"));
        }
        for (i, element) in self.elements.iter().enumerate() {
            if element.tag.is_empty() || element.tag.len() > 64 {
                return Err(ApiError::invalid_field(format!(
                    "elements[{i}].tag must be 1 to 64 bytes"
                )));
            }
            let r = element.rect;
            if ![r.x, r.y, r.width, r.height].into_iter().all(finite) {
                return Err(ApiError::invalid_field(format!(
                    "elements[{i}].rect must be finite numbers"
                )));
            }
        }
        Ok(())
    }

    fn normalise(&mut self) {
        cut(&mut self.title, 300);
        cut_opt(&mut self.note, 2000);
        for element in &mut self.elements {
            cut_opt(&mut element.text, TEXT_CHARS);
            cut(&mut element.tag, 64);
            element.classes.truncate(50);
            for class in &mut element.classes {
                cut(class, TEXT_CHARS);
            }
            cut_opt(&mut element.id, TEXT_CHARS);
            cut_opt(&mut element.react_component, TEXT_CHARS);
            cut_opt(&mut element.selector, 500);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r##"{"url":"https://app.example.com/dashboard","title":"Dashboard","note":"overflows",
        "viewport":{"width":1280,"height":800},
        "elements":[{"tag":"div","classes":["card"],"id":"revenue","text":"Revenue $12,400",
                     "rect":{"x":10,"y":20,"width":300,"height":120},"react_component":"RevenueCard","selector":"#revenue"}]}"##;

    #[test]
    fn accepts_the_documented_example() {
        let selection = DomSelection::from_body(GOOD.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(
            selection.elements[0].react_component.as_deref(),
            Some("RevenueCard")
        );
    }

    #[test]
    fn cuts_text_to_100_chars() {
        let long = GOOD.replace("Revenue $12,400", &"é".repeat(250));
        let selection = DomSelection::from_body(long.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(
            selection.elements[0].text.as_ref().unwrap().chars().count(),
            100
        );
    }

    #[test]
    fn refuses_bad_selections() {
        let limits = Limits {
            selection_elements: 1,
            ..Limits::default()
        };
        let two = GOOD.replace(
            r#""elements":[{"#,
            r#""elements":[{"tag":"p","rect":{"x":0,"y":0,"width":1,"height":1}},{"#,
        );
        assert_eq!(
            DomSelection::from_body(two.as_bytes(), &limits)
                .unwrap_err()
                .code,
            ErrorCode::TooLarge
        );
        let no_elements =
            GOOD.split("\"elements\"").next().unwrap().to_string() + "\"elements\":[]}";
        assert_eq!(
            DomSelection::from_body(no_elements.as_bytes(), &Limits::default())
                .unwrap_err()
                .code,
            ErrorCode::InvalidField
        );
        let js_url = GOOD.replace("https://app.example.com/dashboard", "javascript:alert(1)");
        assert_eq!(
            DomSelection::from_body(js_url.as_bytes(), &Limits::default())
                .unwrap_err()
                .code,
            ErrorCode::InvalidField
        );
        let small = Limits {
            selection_bytes: 10,
            ..Limits::default()
        };
        assert_eq!(
            DomSelection::from_body(GOOD.as_bytes(), &small)
                .unwrap_err()
                .code,
            ErrorCode::TooLarge
        );
    }
}
