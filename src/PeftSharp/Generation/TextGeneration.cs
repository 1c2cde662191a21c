using System.Runtime.CompilerServices;
using System.Threading.Channels;
using PeftSharp.Models;
using PeftSharp.Tokenization;

namespace PeftSharp.Generation;

/// <summary>The text a generation produced, with the ids on both sides.</summary>
public sealed record GeneratedText(IReadOnlyList<int> PromptIds, IReadOnlyList<int> GeneratedIds, string Text, string StopReason);

/// <summary>
/// Text in, text out: tokenises the prompt, runs <see cref="Generator"/>, stops on eos ids or stop strings, and streams
/// the decoded text as it grows. Decoding is incremental on whole-text boundaries: a piece is released only when the
/// decoded text no longer ends in a partial UTF-8 sequence (U+FFFD), so multi-byte characters are never split.
/// </summary>
public sealed class TextGeneration(PretrainedModel model, HfTokenizer tokenizer)
{
    private readonly Generator _generator = new(model);

    /// <summary>Options with the tokenizer's eos ids and pad id filled in when the caller left them empty.</summary>
    public GenerationOptions Complete(GenerationOptions options, IReadOnlyList<string>? stopStrings = null)
    {
        var eos = options.EosTokenIds.Count > 0 ? options.EosTokenIds : tokenizer.EosTokenIds;
        var stops = stopStrings?.Where(s => s.Length > 0).ToArray() ?? [];
        return options with
        {
            EosTokenIds = eos,
            PadTokenId = tokenizer.PadTokenId ?? tokenizer.EosTokenId ?? options.PadTokenId,
            StopWhen = stops.Length == 0 ? options.StopWhen : (row, ids) => stops.Any(tokenizer.Decode(ids, skipSpecialTokens: true).Contains),
        };
    }

    /// <summary>Generates for one prompt (special tokens such as BOS added as the tokenizer says).</summary>
    public GeneratedText Generate(string prompt, GenerationOptions options, IReadOnlyList<string>? stopStrings = null, Action<string>? onText = null)
    {
        var promptIds = tokenizer.Encode(prompt);
        var o = Complete(options, stopStrings);
        // Streamed pieces are cut from decode(prompt + generated) so the first piece keeps its leading space
        // (SentencePiece decoders strip it at the start of a sequence).
        var sofar = new List<int>(promptIds);
        var emitted = onText is null ? 0 : tokenizer.Decode(promptIds, skipSpecialTokens: true).Length;
        var ids = _generator.Generate([promptIds], o, (_, token) =>
        {
            if (onText is null)
            {
                return;
            }
            sofar.Add(token);
            var text = tokenizer.Decode(sofar, skipSpecialTokens: true);
            if (!text.EndsWith('\uFFFD') && text.Length > emitted)
            {
                onText(text[emitted..]);
                emitted = text.Length;
            }
        })[0];
        return Finish(promptIds, ids, o, stopStrings);
    }

    /// <summary>
    /// Generates for several prompts in one left-padded batch (no streaming); row <c>i</c> of the result belongs to
    /// <c>prompts[i]</c>. With <see cref="Core.PeftModel.UseAdapterPerRow"/> in effect each row decodes with its own adapter.
    /// </summary>
    public IReadOnlyList<GeneratedText> Generate(IReadOnlyList<string> prompts, GenerationOptions options, IReadOnlyList<string>? stopStrings = null)
    {
        var promptIds = prompts.Select(p => tokenizer.Encode(p)).ToList();
        var o = Complete(options, stopStrings);
        var ids = _generator.Generate(promptIds, o);
        return [.. promptIds.Select((p, i) => Finish(p, ids[i], o, stopStrings))];
    }

    private GeneratedText Finish(IReadOnlyList<int> promptIds, IReadOnlyList<int> ids, GenerationOptions o, IReadOnlyList<string>? stopStrings)
    {
        var full = tokenizer.Decode(ids, skipSpecialTokens: true);
        var reason = ids.Count > 0 && o.EosTokenIds.Contains(ids[^1]) ? "eos" : ids.Count >= o.MaxNewTokens ? "length" : "stop_string";
        if (reason == "stop_string" && stopStrings is not null)
        {
            var cut = stopStrings.Where(s => s.Length > 0 && full.Contains(s, StringComparison.Ordinal)).Select(s => full.IndexOf(s, StringComparison.Ordinal)).DefaultIfEmpty(full.Length).Min();
            full = full[..cut];
        }
        return new GeneratedText(promptIds, ids, full, reason);
    }

    /// <summary>Streams the generated text in pieces as tokens are chosen (the work runs on a background thread).</summary>
    public async IAsyncEnumerable<string> StreamAsync(string prompt, GenerationOptions options, IReadOnlyList<string>? stopStrings = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var channel = Channel.CreateUnbounded<string>();
        var work = Task.Run(() =>
        {
            try
            {
                Generate(prompt, options, stopStrings, piece => channel.Writer.TryWrite(piece));
                channel.Writer.Complete();
            }
            catch (Exception e)
            {
                channel.Writer.Complete(e);
            }
        }, cancellationToken);
        await foreach (var piece in channel.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            yield return piece;
        }
        await work.ConfigureAwait(false);
    }
}
