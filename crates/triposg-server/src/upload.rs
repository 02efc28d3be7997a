//! Reading an upload form (image + text fields) and checking the image before queueing it, so
//! a bad file is refused at once with a reason instead of failing minutes later.

use std::collections::HashMap;
use std::io::Cursor;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart};
use axum::http::{header, Request, StatusCode};
use triposg_image::{DecodeLimits, ImageError};

use crate::api::ApiError;
use crate::params::JobParams;

pub struct Upload {
    pub image: Bytes,
    /// The name the browser gave the file, for display.
    pub file_name: String,
    pub fields: HashMap<String, String>,
}

/// Reads the form: the image under `image_field`, every other part as a text field.
pub async fn read_form(mut form: Multipart, image_field: &str) -> Result<Upload, ApiError> {
    let mut image = None;
    let mut fields = HashMap::new();
    let form_error = |e: axum::extract::multipart::MultipartError| {
        let status = e.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "the upload is too large: send a smaller image (the server's limit is set by --max-upload-mb)".to_string()
        } else {
            format!("could not read the upload form: {}", e.body_text())
        };
        ApiError::new(status, message)
    };
    while let Some(field) = form.next_field().await.map_err(form_error)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == image_field {
            let file_name = field.file_name().unwrap_or("image").to_string();
            image = Some((field.bytes().await.map_err(form_error)?, file_name));
        } else {
            fields.insert(name, field.text().await.map_err(form_error)?);
        }
    }
    let (image, file_name) = image.ok_or_else(|| {
        ApiError::bad_request(format!(
            "no image uploaded: send the photo as the form field `{image_field}`"
        ))
    })?;
    if image.is_empty() {
        return Err(ApiError::bad_request("the uploaded image file is empty"));
    }
    Ok(Upload {
        image,
        file_name: display_name(&file_name),
        fields,
    })
}

/// The upload and parameters of a job form, as `POST /api/jobs` reads them.
pub async fn read_job_form(form: Multipart) -> Result<(Upload, JobParams), ApiError> {
    let upload = read_form(form, "image").await?;
    let params = JobParams::from_fields(&upload.fields).map_err(ApiError::bad_request)?;
    Ok((upload, params))
}

/// [`read_job_form`] on a raw request body, for the `upload_form` fuzz target and the replay of
/// its corpus: the parameters, or the status and sentence the API would answer.
pub async fn read_job_form_body(
    content_type: &str,
    body: Vec<u8>,
) -> Result<JobParams, (StatusCode, String)> {
    let request = Request::post("/api/jobs")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    let form = Multipart::from_request(request, &())
        .await
        .map_err(|e| (e.status(), e.body_text()))?;
    let (_, params) = read_job_form(form)
        .await
        .map_err(|e| (e.status, e.message))?;
    Ok(params)
}

/// The last path component, without control characters, at most 100 characters.
fn display_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let clean: String = base.chars().filter(|c| !c.is_control()).take(100).collect();
    if clean.is_empty() {
        "image".into()
    } else {
        clean
    }
}

pub fn image_error(e: ImageError) -> ApiError {
    let status = match &e {
        ImageError::FileTooLarge { .. }
        | ImageError::TooLarge { .. }
        | ImageError::TooLong { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        ImageError::UnsupportedFormat(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ImageError::Malformed(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, e.to_string())
}

/// Decodes the image within the limits and returns a small PNG of it for the history.
pub fn check_and_thumbnail(bytes: &[u8], limits: &DecodeLimits) -> Result<Vec<u8>, ApiError> {
    let image = triposg_image::decode(bytes, limits).map_err(image_error)?;
    let mut png = Vec::new();
    image
        .thumbnail(256, 256)
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| ApiError::internal(format!("could not make the thumbnail: {e}")))?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displayed_names_lose_folders_and_control_characters() {
        assert_eq!(display_name("C:\\photos\\cat.jpg"), "cat.jpg");
        assert_eq!(display_name("../../etc/passwd"), "passwd");
        assert_eq!(display_name("a\nb.png"), "ab.png");
        assert_eq!(display_name(""), "image");
    }
}
