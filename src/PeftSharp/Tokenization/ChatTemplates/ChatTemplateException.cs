namespace PeftSharp.Tokenization.ChatTemplates;

/// <summary>
/// A chat template failed while rendering: the template called <c>raise_exception(msg)</c> (the message is then exactly
/// <c>msg</c>, as transformers' <c>TemplateError</c>), or an operation had the wrong types, e.g. <c>'a' + 1</c>
/// (the message then starts with the template line and column).
/// </summary>
public sealed class ChatTemplateException : PeftException
{
    public ChatTemplateException(string message) : base(message) { }

    /// <summary>True when the template itself raised the error through <c>raise_exception</c>.</summary>
    public bool RaisedByTemplate { get; init; }
}

/// <summary>
/// An error raised below the interpreter (filters, methods, operators) before its template position is known; the
/// interpreter turns it into a <see cref="ChatTemplateException"/> or, for unsupported constructs, a
/// <see cref="ConfigException"/> carrying the line and column.
/// </summary>
internal sealed class TemplateError : PeftException
{
    public TemplateError(string message, bool unsupported = false) : base(message)
    {
        Unsupported = unsupported;
    }

    public bool Unsupported { get; }

    public bool RaisedByTemplate { get; init; }

    public static TemplateError NotSupported(string what) => new("unsupported " + what, unsupported: true);
}
