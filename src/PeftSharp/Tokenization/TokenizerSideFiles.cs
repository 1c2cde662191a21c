using System.Text.Json;

namespace PeftSharp.Tokenization;

/// <summary>
/// What transformers reads beside tokenizer.json: tokenizer_config.json, special_tokens_map.json,
/// generation_config.json and config.json (special tokens, chat template, Llama's add_bos/add_eos).
/// </summary>
internal sealed class TokenizerSideFiles
{
    /// <summary>A special token by name: absent, explicitly null, or a token string.</summary>
    public readonly record struct TokenSetting(bool Present, string? Content, string File);

    public Dictionary<string, TokenSetting> Tokens { get; } = [];

    public string? ChatTemplate { get; private set; }

    public bool? AddBosToken { get; private set; }

    public bool? AddEosToken { get; private set; }

    public string? TokenizerClass { get; private set; }

    public bool CleanUpTokenizationSpaces { get; private set; }

    /// <summary>Extra entries of tokenizer_config.json "added_tokens_decoder" (id, content, special).</summary>
    public List<(int Id, string Content, bool Special, bool Normalized, bool LStrip, bool RStrip, bool SingleWord)> AddedTokensDecoder { get; } = [];

    /// <summary>bos/eos/pad ids from generation_config.json then config.json (the first file that has the key wins).</summary>
    public Dictionary<string, (int[] Ids, string File)> ModelTokenIds { get; } = [];

    public static TokenizerSideFiles Read(string? tokenizerConfigPath, string? specialTokensMapPath,
        string? generationConfigPath, string? modelConfigPath, string? chatTemplatePath)
    {
        var files = new TokenizerSideFiles();
        if (tokenizerConfigPath != null && File.Exists(tokenizerConfigPath))
        {
            files.ReadTokenizerConfig(tokenizerConfigPath);
        }
        if (specialTokensMapPath != null && File.Exists(specialTokensMapPath))
        {
            using var doc = Parse(specialTokensMapPath);
            files.ReadTokenNames(doc.RootElement, specialTokensMapPath);
        }
        foreach (var path in new[] { generationConfigPath, modelConfigPath })
        {
            if (path != null && File.Exists(path))
            {
                using var doc = Parse(path);
                files.ReadModelIds(doc.RootElement, path);
            }
        }
        if (files.ChatTemplate == null && chatTemplatePath != null && File.Exists(chatTemplatePath))
        {
            files.ChatTemplate = File.ReadAllText(chatTemplatePath);
        }
        return files;
    }

    public static JsonDocument Parse(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            return JsonDocument.Parse(stream, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{path}: not valid JSON ({e.Message})", e);
        }
        catch (IOException e)
        {
            throw new ConfigException($"{path}: cannot be read ({e.Message})", e);
        }
    }

    private void ReadTokenizerConfig(string path)
    {
        using var doc = Parse(path);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new ConfigException($"{path}: expected a JSON object, found {root.ValueKind}");
        }
        ReadTokenNames(root, path);
        AddBosToken = OptionalBool(root, "add_bos_token", path);
        AddEosToken = OptionalBool(root, "add_eos_token", path);
        CleanUpTokenizationSpaces = OptionalBool(root, "clean_up_tokenization_spaces", path) ?? false;
        if (root.TryGetProperty("tokenizer_class", out var cls) && cls.ValueKind == JsonValueKind.String)
        {
            TokenizerClass = cls.GetString();
        }
        if (root.TryGetProperty("chat_template", out var template))
        {
            ChatTemplate = ReadChatTemplate(template, path);
        }
        if (root.TryGetProperty("added_tokens_decoder", out var decoder) && decoder.ValueKind == JsonValueKind.Object)
        {
            foreach (var p in decoder.EnumerateObject())
            {
                if (!int.TryParse(p.Name, out int id) || p.Value.ValueKind != JsonValueKind.Object
                    || !p.Value.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
                {
                    throw new ConfigException($"{path}: added_tokens_decoder entry \"{p.Name}\" must map an id to {{\"content\": ...}}");
                }
                AddedTokensDecoder.Add((id, content.GetString()!, Flag(p.Value, "special", false), Flag(p.Value, "normalized", true),
                    Flag(p.Value, "lstrip", false), Flag(p.Value, "rstrip", false), Flag(p.Value, "single_word", false)));
            }
        }
    }

    // chat_template is a string, or a list of {"name", "template"} of which we take "default".
    private static string? ReadChatTemplate(JsonElement template, string path)
    {
        switch (template.ValueKind)
        {
            case JsonValueKind.String:
                return template.GetString();
            case JsonValueKind.Null:
                return null;
            case JsonValueKind.Array:
                foreach (var entry in template.EnumerateArray())
                {
                    if (entry.ValueKind == JsonValueKind.Object && entry.TryGetProperty("name", out var name)
                        && name.ValueKind == JsonValueKind.String && name.GetString() == "default"
                        && entry.TryGetProperty("template", out var body) && body.ValueKind == JsonValueKind.String)
                    {
                        return body.GetString();
                    }
                }
                return null;
            default:
                throw new ConfigException($"{path}: chat_template must be a string or a list of {{name, template}}, found {template.ValueKind}");
        }
    }

    private void ReadTokenNames(JsonElement root, string path)
    {
        foreach (var name in new[] { "bos_token", "eos_token", "pad_token", "unk_token" })
        {
            if (Tokens.ContainsKey(name) || !root.TryGetProperty(name, out var v))
            {
                continue;
            }
            // A token is "<s>" or an AddedToken object {"content": "<s>", ...}.
            string? content = v.ValueKind switch
            {
                JsonValueKind.String => v.GetString(),
                JsonValueKind.Null => null,
                JsonValueKind.Object when v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
                _ => throw new ConfigException($"{path}: {name} must be a string, null or {{\"content\": ...}}, found {v.ValueKind}"),
            };
            Tokens[name] = new TokenSetting(true, content, path);
        }
    }

    private void ReadModelIds(JsonElement root, string path)
    {
        foreach (var name in new[] { "bos_token_id", "eos_token_id", "pad_token_id" })
        {
            if (ModelTokenIds.ContainsKey(name) || !root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
            {
                continue;
            }
            int[] ids = v.ValueKind switch
            {
                JsonValueKind.Number when v.TryGetInt32(out int id) => [id],
                JsonValueKind.Array when v.EnumerateArray().All(x => x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out _))
                    => v.EnumerateArray().Select(x => x.GetInt32()).ToArray(),
                _ => throw new ConfigException($"{path}: {name} must be an integer or a list of integers, found {v}"),
            };
            if (ids.Length > 0)
            {
                ModelTokenIds[name] = (ids, path);
            }
        }
    }

    private static bool? OptionalBool(JsonElement root, string key, string path)
    {
        if (!root.TryGetProperty(key, out var v))
        {
            return null;
        }
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Null => null,
            _ => throw new ConfigException($"{path}: {key} must be true or false, found {v.ValueKind}"),
        };
    }

    private static bool Flag(JsonElement obj, string key, bool defaultValue) =>
        obj.TryGetProperty(key, out var v) ? v.ValueKind == JsonValueKind.True || (v.ValueKind != JsonValueKind.False && defaultValue) : defaultValue;
}
