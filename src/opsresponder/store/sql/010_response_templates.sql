-- Response templates (rules/templates/, store/response_templates.py, docs/templates.md).

-- One row per template version. body is the checked template (rules/templates/model.py ResponseTemplate)
-- as JSON; template_key and version repeat its id and version for the constraints below.
-- source 'api': created through /api/v1/rules/responses (changed in place by PUT);
-- source 'file': loaded from config/templates/ at start, read-only through the API. A file's new version
-- is a new row and the older rows stay (not current), so whatever refers to a version keeps finding it.
-- body_sha256: a file changed without a new version is detected (and refused) by comparing it.
CREATE TABLE rules.response_templates (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    template_key  text NOT NULL,
    version       text NOT NULL,
    source        text NOT NULL CHECK (source IN ('api', 'file')),
    file_path     text CHECK ((source = 'file') = (file_path IS NOT NULL)),
    body          jsonb NOT NULL CHECK (jsonb_typeof(body) = 'object'),
    body_sha256   text NOT NULL,
    current       boolean NOT NULL DEFAULT true,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (template_key, version)
);

-- One current version per key, whichever its source: an API template cannot take a file's key, nor the
-- other way round.
CREATE UNIQUE INDEX response_templates_current_key ON rules.response_templates (template_key) WHERE current;
