using PeftSharp.Tokenization.Pipeline;

namespace PeftSharp.Tokenization;

/// <summary>
/// A Hugging Face fast tokenizer read from tokenizer.json, giving the ids of the Rust <c>tokenizers</c> library:
/// added/special tokens split out first, then normalizer, pre-tokenizer, model (BPE, WordPiece, WordLevel) and, when
/// asked, the post-processor; decoding runs the decoder. Covers GPT-2, Llama 2/3, Mistral, Qwen2/3, SmolLM, BERT.
/// </summary>
public sealed partial class HfTokenizer
{
    private static readonly HashSet<string> s_llamaClasses =
        ["LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer", "CodeLlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast"];

    private readonly TokenizerPipeline _pipeline;
    private readonly IPostProcessor? _postProcessor;
    private readonly bool _cleanUpSpaces;

    private HfTokenizer(TokenizerPipeline pipeline, TokenizerSideFiles side, string tokenizerJsonPath)
    {
        _pipeline = pipeline;
        _cleanUpSpaces = side.CleanUpTokenizationSpaces;
        ChatTemplate = side.ChatTemplate;
        VocabSize = pipeline.Model.Vocab.Count + pipeline.Added.Tokens.Select(t => t.Content).Distinct()
            .Count(c => !pipeline.Model.Vocab.ContainsKey(c));

        BosTokenId = ResolveId(side, "bos_token", tokenizerJsonPath);
        EosTokenId = ResolveId(side, "eos_token", tokenizerJsonPath);
        PadTokenId = ResolveId(side, "pad_token", tokenizerJsonPath);
        var eos = new List<int>();
        if (EosTokenId is int e)
        {
            eos.Add(e);
        }
        if (side.ModelTokenIds.TryGetValue("eos_token_id", out var modelEos))
        {
            eos.AddRange(modelEos.Ids.Where(id => !eos.Contains(id)));
        }
        EosTokenIds = eos;

        // transformers' LlamaTokenizerFast/GemmaTokenizerFast rebuild the template from add_bos_token/add_eos_token.
        _postProcessor = side.TokenizerClass != null && s_llamaClasses.Contains(side.TokenizerClass)
            && (side.AddBosToken.HasValue || side.AddEosToken.HasValue)
            ? PostProcessors.BosEos(side.AddBosToken ?? true ? BosTokenId : null, side.AddEosToken ?? false ? EosTokenId : null)
            : pipeline.PostProcessor;
    }

    /// <summary>Number of distinct tokens: the model vocabulary plus added tokens not in it (transformers' <c>len(tokenizer)</c>).</summary>
    public int VocabSize { get; }

    /// <summary>Beginning-of-sequence id: tokenizer_config.json / special_tokens_map.json "bos_token", else generation_config.json / config.json "bos_token_id".</summary>
    public int? BosTokenId { get; }

    /// <summary>End-of-sequence id, found as <see cref="BosTokenId"/> is (the first id when the model files list several).</summary>
    public int? EosTokenId { get; }

    /// <summary>Padding id, found as <see cref="BosTokenId"/> is; null when the tokenizer has no pad token.</summary>
    public int? PadTokenId { get; }

    /// <summary>Every id that ends generation: <see cref="EosTokenId"/>, then the generation_config.json (or config.json) "eos_token_id" list.</summary>
    public IReadOnlyList<int> EosTokenIds { get; }

    /// <summary>The Jinja chat template of tokenizer_config.json "chat_template" (a string, or the "default" entry of a list), or chat_template.jinja.</summary>
    public string? ChatTemplate { get; }

    /// <summary>Loads tokenizer.json from a model folder, with tokenizer_config.json, special_tokens_map.json, generation_config.json, config.json and chat_template.jinja when present.</summary>
    /// <exception cref="ConfigException">tokenizer.json is missing, malformed, or uses a component PeftSharp does not implement.</exception>
    public static HfTokenizer FromFolder(string modelFolder)
    {
        var tokenizerJson = Path.Combine(modelFolder, "tokenizer.json");
        if (!File.Exists(tokenizerJson))
        {
            throw new ConfigException($"{modelFolder}: no tokenizer.json (only the Hugging Face fast-tokenizer format is supported)");
        }
        var side = TokenizerSideFiles.Read(Path.Combine(modelFolder, "tokenizer_config.json"),
            Path.Combine(modelFolder, "special_tokens_map.json"), Path.Combine(modelFolder, "generation_config.json"),
            Path.Combine(modelFolder, "config.json"), Path.Combine(modelFolder, "chat_template.jinja"));
        return Create(tokenizerJson, side);
    }

    /// <summary>Loads a tokenizer.json file and, optionally, its tokenizer_config.json.</summary>
    /// <exception cref="ConfigException">A file is missing, malformed, or uses a component PeftSharp does not implement.</exception>
    public static HfTokenizer FromFile(string tokenizerJsonPath, string? tokenizerConfigPath = null)
    {
        if (tokenizerConfigPath != null && !File.Exists(tokenizerConfigPath))
        {
            throw new ConfigException($"{tokenizerConfigPath}: file not found");
        }
        return Create(tokenizerJsonPath, TokenizerSideFiles.Read(tokenizerConfigPath, null, null, null, null));
    }

    private static HfTokenizer Create(string tokenizerJsonPath, TokenizerSideFiles side)
    {
        var extra = side.AddedTokensDecoder.Select(t => new AddedToken(t.Id, t.Content, t.Special, t.SingleWord, t.LStrip, t.RStrip, t.Normalized));
        return new HfTokenizer(TokenizerJson.Load(tokenizerJsonPath, extra), side, tokenizerJsonPath);
    }

    /// <summary>
    /// Token ids of <paramref name="text"/>. Special tokens written in the text are always recognised; with
    /// <paramref name="addSpecialTokens"/> the post-processor adds its own (BERT [CLS] … [SEP], Llama &lt;s&gt;).
    /// </summary>
    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = EncodeContent(text);
        return addSpecialTokens && _postProcessor != null ? _postProcessor.Process(ids) : ids;
    }

    /// <summary>
    /// Text of <paramref name="ids"/> through the tokenizer.json decoder (unknown ids are skipped, as tokenizers does),
    /// then transformers' space clean-up when tokenizer_config.json sets clean_up_tokenization_spaces.
    /// </summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var tokens = new List<string>();
        foreach (int id in ids)
        {
            var token = TokenToString(id);
            if (token != null && !(skipSpecialTokens && _pipeline.Added.IsSpecialContent(token)))
            {
                tokens.Add(token);
            }
        }
        var text = _pipeline.Decoder != null ? string.Concat(_pipeline.Decoder.DecodeChain(tokens)) : string.Join(" ", tokens);
        return _cleanUpSpaces ? CleanUpTokenizationSpaces(text) : text;
    }

    /// <summary>The token string of an id (added tokens first, then the model vocabulary), or null if unknown.</summary>
    public string? TokenToString(int id) => _pipeline.Added.ById(id)?.Content ?? _pipeline.Model.IdToToken(id);

    /// <summary>The id of a token string (added tokens first, then the model vocabulary), or null if unknown.</summary>
    public int? StringToId(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        if (_pipeline.Added.ByContent(token) is { } added)
        {
            return added.Id;
        }
        return _pipeline.Model.Vocab.TryGetValue(token, out int id) ? id : null;
    }

    /// <summary>
    /// Encodes several texts and pads them to the longest row with <see cref="PadTokenId"/> (or <see cref="EosTokenId"/>
    /// when there is no pad token); AttentionMask is 1 on tokens and 0 on padding. With <paramref name="truncate"/>,
    /// rows are cut to <paramref name="maxLength"/> before the special tokens are added, so those survive (as tokenizers
    /// truncates); without it, a row longer than <paramref name="maxLength"/> is an error.
    /// </summary>
    /// <exception cref="PeftException">A row exceeds maxLength without truncation, or padding is needed and the tokenizer has neither pad nor eos token.</exception>
    public BatchEncoding EncodeBatch(IReadOnlyList<string> texts, bool addSpecialTokens = true, PaddingSide side = PaddingSide.Right,
        int? maxLength = null, bool truncate = false)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (maxLength is <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "maxLength must be positive");
        }
        if (truncate && maxLength == null)
        {
            throw new ArgumentException("truncate needs maxLength", nameof(truncate));
        }
        int added = addSpecialTokens ? _postProcessor?.AddedTokens ?? 0 : 0;
        var rows = new List<List<int>>(texts.Count);
        for (int r = 0; r < texts.Count; r++)
        {
            var ids = EncodeContent(texts[r]);
            if (truncate && ids.Count + added > maxLength!.Value)
            {
                int keep = maxLength.Value - added;
                if (keep < 0)
                {
                    throw new PeftException($"maxLength {maxLength} is shorter than the {added} special tokens the post-processor adds");
                }
                ids.RemoveRange(keep, ids.Count - keep);
            }
            var row = addSpecialTokens && _postProcessor != null ? _postProcessor.Process(ids) : ids;
            if (maxLength is int max && row.Count > max)
            {
                throw new PeftException($"text {r} has {row.Count} tokens, more than maxLength {max}; pass truncate: true to cut it");
            }
            rows.Add(row);
        }
        return Pad(rows, side);
    }

    private BatchEncoding Pad(List<List<int>> rows, PaddingSide side)
    {
        int width = rows.Count == 0 ? 0 : rows.Max(r => r.Count);
        int? pad = PadTokenId ?? EosTokenId;
        if (pad == null && rows.Any(r => r.Count < width))
        {
            throw new PeftException("cannot pad: the tokenizer defines neither pad_token nor eos_token");
        }
        var inputIds = new int[rows.Count][];
        var mask = new int[rows.Count][];
        for (int r = 0; r < rows.Count; r++)
        {
            int padCount = width - rows[r].Count;
            int offset = side == PaddingSide.Left ? padCount : 0;
            inputIds[r] = new int[width];
            mask[r] = new int[width];
            Array.Fill(inputIds[r], pad ?? 0);
            rows[r].CopyTo(inputIds[r], offset);
            Array.Fill(mask[r], 1, offset, rows[r].Count);
        }
        return new BatchEncoding(inputIds, mask);
    }

    private List<int> EncodeContent(string text)
    {
        var ids = new List<int>();
        foreach (var piece in _pipeline.Added.SplitAndNormalize(text, _pipeline.Normalizer))
        {
            if (piece.Id is int id)
            {
                ids.Add(id);
                continue;
            }
            List<PreToken> words = [new PreToken(piece.Text, piece.AtOriginalStart)];
            if (_pipeline.PreTokenizer != null)
            {
                words = _pipeline.PreTokenizer.PreTokenize(words);
            }
            foreach (var word in words)
            {
                _pipeline.Model.Tokenize(word.Text, ids);
            }
        }
        return ids;
    }

    private int? ResolveId(TokenizerSideFiles side, string name, string tokenizerJsonPath)
    {
        if (side.Tokens.TryGetValue(name, out var setting))
        {
            if (setting.Content == null)
            {
                return null; // explicitly null: the tokenizer has no such token, whatever the model config says
            }
            return StringToId(setting.Content)
                ?? throw new ConfigException($"{setting.File}: {name} \"{setting.Content}\" is not in the vocabulary of {tokenizerJsonPath}");
        }
        return side.ModelTokenIds.TryGetValue(name + "_id", out var ids) ? ids.Ids[0] : null;
    }

    // transformers' PreTrainedTokenizerBase.clean_up_tokenization.
    private static string CleanUpTokenizationSpaces(string s) => s
        .Replace(" .", ".", StringComparison.Ordinal).Replace(" ?", "?", StringComparison.Ordinal)
        .Replace(" !", "!", StringComparison.Ordinal).Replace(" ,", ",", StringComparison.Ordinal)
        .Replace(" ' ", "'", StringComparison.Ordinal).Replace(" n't", "n't", StringComparison.Ordinal)
        .Replace(" 'm", "'m", StringComparison.Ordinal).Replace(" 's", "'s", StringComparison.Ordinal)
        .Replace(" 've", "'ve", StringComparison.Ordinal).Replace(" 're", "'re", StringComparison.Ordinal);
}
